-- topology: every stored exchange and binding (topology.py decodes and sorts them).
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)
-- Returns {exchanges hash flat (name, JSON), bindings set members}.

return {redis.call('HGETALL', K_exchanges), redis.call('SMEMBERS', K_bindings)}
