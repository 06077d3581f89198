-- finish: apply each outcome whose lease token holds; the transitions were decided by policy.py.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)
-- ARGV[3..] five values per outcome: kind, id, token, a, b, where by kind
--   completed: a = result            retrying: a = error JSON, b = delay (ms)
--   failed:    a = reason, b = error JSON ('' = none)
--   crashed:   a = error JSON, b = delay (ms; '' = due at once, keeping scheduled_at)
--   cancelled: a = reason            released: -            snoozed: b = delay (ms)
-- Returns 1 per applied outcome, 0 where the lease was lost (nothing changed).
-- Publishes the ids of jobs that ended on the done channel (dependents cancelled with them
-- too), and the queues of jobs waiting again or released from `pending` on the ready channel.

local KINDS = {completed = true, retrying = true, failed = true, crashed = true,
  cancelled = true, released = true, snoozed = true}
-- A script's writes are not rolled back by an error, so every kind is checked before any.
for i = 3, #ARGV, 5 do
  if not KINDS[ARGV[i]] then return redis.error_reply('unknown outcome kind ' .. ARGV[i]) end
end

local out, ended = {}, {}

-- The common outcome, written out: four fields read instead of load()'s thirteen.
local function complete(id, token, result)
  local v = redis.call('HMGET', K_job(id), 'state', 'token', 'queue', 'result_ttl')
  if v[1] ~= 'running' or v[2] ~= token then return 0 end
  local ttl = tonumber(v[4]) or 0
  redis.call('HSET', K_job(id), 'state', 'completed', 'finished_at', NOW,
    'result_expires_at', NOW + ttl)
  redis.call('HDEL', K_job(id), 'token', 'expires_at')
  redis.call('ZREM', K_running, id)
  redis.call('ZADD', K_finished, NOW, id)
  if ttl > 0 then
    redis.call('SET', K_result(id), result, 'PX', ttl)
    redis.call('ZADD', K_results, NOW + ttl, id)
  end
  count(v[3] or '', 'running', -1)
  count(v[3] or '', 'completed', 1)
  ended[#ended + 1] = id
  settle_dependents(id, true, ended)
  return 1
end

local function settle(kind, id, token, a, b)
  local job = load(id)
  if not job or job.state ~= 'running' or job.token ~= token then return 0 end
  if kind == 'retrying' then
    move(id, job, 'retryable', {
      failures = job.failures + 1, errors = with_error(id, a), scheduled_at = NOW + tonumber(b),
    }, {})
  elseif kind == 'failed' then
    local set = {fail_reason = a}
    if b ~= '' then
      if a == 'crashed' then set.crashes = job.crashes + 1 else set.failures = job.failures + 1 end
      set.errors = with_error(id, b)
    end
    move(id, job, 'failed', set, {})
  elseif kind == 'crashed' then
    local set = {crashes = job.crashes + 1, errors = with_error(id, a)}
    if b ~= '' then set.scheduled_at = NOW + tonumber(b) end
    move(id, job, 'retryable', set, {})
  elseif kind == 'cancelled' then
    move(id, job, 'cancelled', {cancel_reason = a}, {})
  elseif kind == 'released' then
    move(id, job, 'available', {}, {})
  else  -- snoozed
    move(id, job, 'scheduled', {scheduled_at = NOW + tonumber(b)}, {})
  end
  if kind == 'failed' or kind == 'cancelled' then
    ended[#ended + 1] = id
    settle_dependents(id, false, ended)
  else
    wake(job.queue)
  end
  return 1
end

for i = 3, #ARGV, 5 do
  local kind, id, token, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if kind == 'completed' then
    out[#out + 1] = complete(id, token, a)
  else
    out[#out + 1] = settle(kind, id, token, a, b)
  end
end
flush_counts()
if #ended > 0 then redis.call('PUBLISH', K_done_channel, table.concat(ended, ' ')) end
publish_ready()
return out
