-- reclaim: take over running jobs whose lease expired or whose worker is gone.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] limit   ARGV[4] lease (ms)
-- ARGV[5] number of gone workers g   ARGV[6..5+g] their ids   ARGV[6+g] a fresh random token
-- (the i-th job taken gets `<token>.<i>`)
-- Returns per job, soonest expiry first: token, lease expiry (ms), then its reply (prelude).
-- Each keeps its attempt, worker_id and pending cancel; the old token no longer holds.

local limit, lease, g = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local candidates
if g == 0 then
  candidates = redis.call('ZRANGEBYSCORE', K_running, '-inf', NOW, 'LIMIT', 0, limit)
else
  -- A gone worker's leases may not have expired: look at every running job (a bounded set,
  -- the fleet's concurrency), in lease order.
  local gone = {}
  for i = 6, 5 + g do gone[ARGV[i]] = true end
  candidates = {}
  local running = redis.call('ZRANGE', K_running, 0, -1, 'WITHSCORES')
  for i = 1, #running, 2 do
    if #candidates >= limit then break end
    local id = running[i]
    if tonumber(running[i + 1]) <= NOW or gone[redis.call('HGET', K_job(id), 'worker_id')] then
      candidates[#candidates + 1] = id
    end
  end
end

local out = {}
local expires = NOW + lease
for i, id in ipairs(candidates) do
  local token = ARGV[6 + g] .. '.' .. i
  redis.call('HSET', K_job(id), 'token', token, 'expires_at', expires)
  redis.call('ZADD', K_running, expires, id)
  out[#out + 1] = token
  out[#out + 1] = expires
  reply(out, id, true)
end
return out
