-- Read counters KEYS after expiring leases: {used, held, ...}.
sweep()
local vals = {}
for i = 1, #KEYS do
  local uh = redis.call('HMGET', KEYS[i], 'u', 'h')
  vals[2 * i - 1], vals[2 * i] = tonumber(uh[1]) or 0, tonumber(uh[2]) or 0
end
return vals
