-- Charge usage directly, once per id ARGV[4] (a reservation the store never
-- saw or lost). Per counter KEYS[i], two arguments from ARGV[5]: amount,
-- time to live (ms, 0 forever).
sweep()
local r = P .. 'r:' .. ARGV[4]
if redis.call('EXISTS', r) == 1 then return 'dup' end
for i = 1, #KEYS do
  local b = 4 + (i - 1) * 2
  redis.call('HINCRBY', KEYS[i], 'u', ARGV[b + 1])
  redis.call('HSETNX', KEYS[i], 'h', 0)
  if ARGV[b + 2] ~= '0' then redis.call('PEXPIRE', KEYS[i], ARGV[b + 2]) end
end
redis.call('HSET', r, 's', 's')
redis.call('PEXPIRE', r, RET)
return 'ok'
