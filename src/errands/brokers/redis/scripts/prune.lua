-- prune: drop results past their expiry, delete terminal jobs finished before a cutoff, and
-- forget heartbeats older than a day.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] finished before (ms, exclusive)   ARGV[4] limit
-- Returns the number of jobs deleted.

local limit = tonumber(ARGV[4])
-- Results expire by their key's TTL on the server's clock; this catches the broker's clock up
-- (a result whose expiry has passed is gone even if the TTL has not fired yet).
local expired = redis.call('ZRANGEBYSCORE', K_results, '-inf', NOW, 'LIMIT', 0, 10000)
for _, id in ipairs(expired) do
  redis.call('DEL', K_result(id))
  redis.call('ZREM', K_results, id)
end

local doomed = redis.call('ZRANGEBYSCORE', K_finished, '-inf', '(' .. ARGV[3], 'LIMIT', 0, limit)
for _, id in ipairs(doomed) do
  local job = load(id)
  if job then
    delete(id, job)
  else
    redis.call('ZREM', K_finished, id)
  end
end

local stale = redis.call('ZRANGEBYSCORE', K_seen, '-inf', NOW - 86400000)
for _, worker in ipairs(stale) do
  redis.call('HDEL', K_workers, worker)
  redis.call('ZREM', K_seen, worker)
end
flush_counts()
return #doomed
