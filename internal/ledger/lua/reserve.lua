-- Reserve (ARGV[6] == 'n') or move (ARGV[6] == 'm') reservation ARGV[4]
-- with lease end ARGV[5]. Per counter KEYS[i], five arguments from
-- ARGV[7]: kind (m money, t tokens, q requests), limit, amount, enforce
-- (1/0), time to live (ms, 0 forever). TTLs are relative so that keys
-- expire on Redis's clock whatever the callers' clocks say. All counters are checked before any
-- is changed: every one is applied, or none.
-- Returns {status, {used, held, ...}}: status ok (values after),
-- refused (values before), dup (id in use), gone (move: not held).
-- The same call again (a client's retry after a timeout, when the first
-- one ran: the same id and lease end) answers ok with the values now, and
-- holds nothing more.
sweep()
local id = ARGV[4]
local r = P .. 'r:' .. id
local st = redis.call('HGET', r, 's')
local old = {}
if ARGV[6] == 'n' then
  if st == 'r' and redis.call('HGET', r, 'e') == ARGV[5] then
    local vals = {}
    for i = 1, #KEYS do
      local uh = redis.call('HMGET', KEYS[i], 'u', 'h')
      vals[2 * i - 1], vals[2 * i] = tonumber(uh[1]) or 0, tonumber(uh[2]) or 0
    end
    return {'ok', vals}
  end
  if st then return {'dup', {}} end
else
  if st ~= 'r' then return {'gone', {}} end
  old = holds_of(r)
  for _, hd in ipairs(old) do add(hd[3], 'h', neg(hd[2])) end
end
local n = #KEYS
local vals = {}
local fresh = {} -- counters that do not exist yet get their TTL
local refused = false
for i = 1, n do
  local b = 6 + (i - 1) * 5
  local uh = redis.call('HMGET', KEYS[i], 'u', 'h')
  local u, h = tonumber(uh[1]) or 0, tonumber(uh[2]) or 0
  vals[2 * i - 1], vals[2 * i] = u, h
  fresh[i] = not uh[1] and not uh[2]
  if ARGV[b + 4] == '1' and u + h + tonumber(ARGV[b + 3]) > tonumber(ARGV[b + 2]) then
    refused = true
  end
end
if refused then
  for _, hd in ipairs(old) do add(hd[3], 'h', hd[2]) end
  return {'refused', vals}
end
local hs = {}
for i = 1, n do
  local b = 6 + (i - 1) * 5
  local kind, amt, exp = ARGV[b + 1], ARGV[b + 3], ARGV[b + 5]
  if kind == 'q' then
    vals[2 * i - 1] = redis.call('HINCRBY', KEYS[i], 'u', amt)
  else
    vals[2 * i] = redis.call('HINCRBY', KEYS[i], 'h', amt)
    hs[#hs + 1] = kind .. ' ' .. amt .. ' ' .. KEYS[i] .. '\n'
  end
  if fresh[i] and exp ~= '0' then redis.call('PEXPIRE', KEYS[i], exp) end
end
-- A held reservation does not expire: only a settle, a release or the
-- sweep of its lease ends it (and gives it RET to live). With a TTL of its
-- own, one whose replica died outlived it whenever no ledger script ran in
-- that time, and its holds stayed on the counters for good.
redis.call('HSET', r, 's', 'r', 'h', table.concat(hs), 'e', ARGV[5])
redis.call('ZADD', LEASES, ARGV[5], id)
return {'ok', vals}
