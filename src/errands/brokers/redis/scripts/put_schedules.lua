-- put_schedules: store schedules, in order, atomically; see Broker.put_schedules.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] 1 to replace changed definitions, else 0
-- ARGV[4..] two values per entry: name, definition
-- Returns per entry 1 when it changed something, else 0.

local out = {}
for i = 4, #ARGV, 2 do
  local name, definition = ARGV[i], ARGV[i + 1]
  local key = K_schedule(name)
  local old = redis.call('HGET', key, 'definition')
  if not old then
    redis.call('HSET', key, 'definition', definition, 'paused', 0, 'cursor', NOW,
      'created_at', NOW, 'updated_at', NOW)
    redis.call('ZADD', K_schedules, 0, name)
    out[#out + 1] = 1
  elseif ARGV[3] == '1' and old ~= definition then
    -- A changed schedule starts afresh; its paused flag, last run and skips are kept.
    redis.call('HSET', key, 'definition', definition, 'cursor', NOW, 'updated_at', NOW)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
