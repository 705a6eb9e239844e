-- Shared by every ledger script (prepended by redis.go).
-- ARGV[1] key prefix, ARGV[2] now (Unix ms), ARGV[3] retention of a
-- finished reservation (ms). A reservation is the hash P.."r:"..id:
--   s  state: r held, x expired (charged at the reserved amount),
--      s settled, l released
--   h  its holds, one per line: "<kind> <amount> <counter key>\n"
--   e  lease end (Unix ms)
-- Counters are hashes with u (used) and h (held). Leases are the sorted
-- set P.."leases" (member id, score lease end). Amounts are integers sent
-- as strings and added with HINCRBY, so sums are exact; comparisons use Lua
-- numbers, exact below 2^53 (config caps budgets far below).
local P = ARGV[1]
local RET = tonumber(ARGV[3])
local LEASES = P .. 'leases'

local function parse_holds(s)
  local out = {}
  if not s then return out end
  for kind, amt, key in string.gmatch(s, '(%a) (%d+) ([^\n]+)\n') do
    out[#out + 1] = {kind, amt, key}
  end
  return out
end

local function holds_of(r)
  return parse_holds(redis.call('HGET', r, 'h'))
end

-- neg negates an amount string ("-0" is not an integer to Redis)
local function neg(a)
  if a == '0' then return '0' end
  return '-' .. a
end

-- add to an existing counter only: one whose window is over and gone must
-- not come back without its expiry
local function add(key, field, amt)
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, field, amt)
  end
end

-- Expired leases turn into charges at the reserved amount; the record
-- stays for RET so that a late settle corrects the charge.
local function sweep()
  local ids = redis.call('ZRANGEBYSCORE', LEASES, '-inf', ARGV[2], 'LIMIT', 0, 100)
  for _, id in ipairs(ids) do
    local r = P .. 'r:' .. id
    if redis.call('HGET', r, 's') == 'r' then
      for _, hd in ipairs(holds_of(r)) do
        add(hd[3], 'h', neg(hd[2]))
        add(hd[3], 'u', hd[2])
      end
      redis.call('HSET', r, 's', 'x')
      redis.call('PEXPIRE', r, RET)
    end
    redis.call('ZREM', LEASES, id)
  end
end
