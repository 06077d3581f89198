-- migrate: record the key layout's version, refusing one written by a newer errands.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] the version this errands writes
-- Returns the stored version.

local stored = redis.call('HGET', K_meta, 'schema')
if not stored then
  redis.call('HSET', K_meta, 'schema', ARGV[3], 'created_at', NOW)
  return tonumber(ARGV[3])
end
if tonumber(stored) > tonumber(ARGV[3]) then
  return redis.error_reply('key layout version ' .. stored .. ' is newer than this errands '
    .. 'knows (' .. ARGV[3] .. '): upgrade errands')
end
return tonumber(stored)
