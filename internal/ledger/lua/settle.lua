-- Settle (ARGV[7] == 's') or release (ARGV[7] == 'l') reservation ARGV[4]:
-- each hold is lifted and the actual amount charged, money ARGV[5] to
-- money counters, tokens ARGV[6] to token counters (release: nothing).
-- A reservation whose lease expired was charged the reserved amount: that
-- charge is replaced by the actual one.
-- Returns ok, late (was expired), dup (already finished) or unknown.
sweep()
local id = ARGV[4]
local r = P .. 'r:' .. id
local sh = redis.call('HMGET', r, 's', 'h')
local st = sh[1]
if not st then return 'unknown' end
if st == 's' or st == 'l' then return 'dup' end
local op = ARGV[7]
for _, hd in ipairs(parse_holds(sh[2])) do
  local actual = ARGV[5]
  if hd[1] == 't' then actual = ARGV[6] end
  if op == 'l' then actual = '0' end
  if redis.call('EXISTS', hd[3]) == 1 then
    if st == 'r' then
      redis.call('HINCRBY', hd[3], 'h', neg(hd[2]))
    else
      redis.call('HINCRBY', hd[3], 'u', neg(hd[2]))
    end
    redis.call('HINCRBY', hd[3], 'u', actual)
  end
end
redis.call('ZREM', LEASES, id)
redis.call('HSET', r, 's', op, 'h', '')
redis.call('PEXPIRE', r, RET)
if st == 'x' then return 'late' end
return 'ok'
