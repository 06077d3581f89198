-- unbind: delete bindings; their exchanges stay. Encoding: topology.py.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3..] one member per binding, each once
-- Returns how many of them were stored.

local removed = 0
for i = 3, #ARGV do
  removed = removed + redis.call('SREM', K_bindings, ARGV[i])
end
return removed
