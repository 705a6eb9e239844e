-- Raise a counter's used to at least ARGV[5] (what the spend ledger has for
-- a budget's subject in its period, ledger.Seed): KEYS[1] the counter,
-- ARGV[6] its time to live (ms, 0 forever). Idempotent: a second raise to
-- the same sum, from this replica or another, adds nothing. Returns what
-- was added.
sweep()
local to = tonumber(ARGV[5])
local u = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
if u >= to then return 0 end
redis.call('HINCRBY', KEYS[1], 'u', to - u)
redis.call('HSETNX', KEYS[1], 'h', 0)
if ARGV[6] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
return to - u
