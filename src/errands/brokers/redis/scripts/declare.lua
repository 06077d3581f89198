-- declare: store exchanges (a name declared again takes the new value) and bindings (a set,
-- so each is stored once), in one atomic write. Encodings: topology.py.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3] n, the number of exchanges
-- ARGV[4..3+2n] name, JSON {kind, unroutable} of each exchange   then one member per binding
-- Returns nothing.

local n = tonumber(ARGV[3])
for i = 4, 2 + 2 * n, 2 do
  redis.call('HSET', K_exchanges, ARGV[i], ARGV[i + 1])
end
for i = 4 + 2 * n, #ARGV do
  redis.call('SADD', K_bindings, ARGV[i])
end
return 0
