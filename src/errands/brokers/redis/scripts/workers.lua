-- workers: heartbeats seen at or after a cutoff.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] how long ago a worker may last have been seen (ms)
-- Returns per worker: its heartbeat (JSON), then when it was seen (ms).

local out = {}
local seen = redis.call('ZRANGEBYSCORE', K_seen, NOW - tonumber(ARGV[3]), '+inf', 'WITHSCORES')
for i = 1, #seen, 2 do
  local beat = redis.call('HGET', K_workers, seen[i])
  if beat then
    out[#out + 1] = beat
    out[#out + 1] = seen[i + 1]
  end
end
return out
