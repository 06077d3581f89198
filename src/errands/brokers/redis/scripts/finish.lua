-- finish: apply each outcome whose lease token holds; the transitions were decided by policy.py.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)
-- ARGV[3..] five values per outcome: kind, id, token, a, b, where by kind
--   completed: a = result            retrying: a = error JSON, b = delay (ms)
--   failed:    a = reason, b = error JSON ('' = none)
--   crashed:   a = error JSON, b = delay (ms; '' = due at once, keeping scheduled_at)
--   cancelled: a = reason            released: -            snoozed: b = delay (ms)
-- Returns 1 per applied outcome, 0 where the lease was lost (nothing changed).
-- Publishes the ids of jobs that ended on the done channel, and the queues of jobs waiting
-- again on the ready channel.

local KINDS = {completed = true, retrying = true, failed = true, crashed = true,
  cancelled = true, released = true, snoozed = true}
-- A script's writes are not rolled back by an error, so every kind is checked before any.
for i = 3, #ARGV, 5 do
  if not KINDS[ARGV[i]] then return redis.error_reply('unknown outcome kind ' .. ARGV[i]) end
end

local ENDS = {completed = true, failed = true, cancelled = true}
local out, ended = {}, {}
for i = 3, #ARGV, 5 do
  local kind, id, token, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local job = load(id)
  if job and job.state == 'running' and job.token == token then
    if kind == 'completed' then
      move(id, job, 'completed', {}, {})
      if job.result_ttl > 0 then
        redis.call('SET', K_result(id), a, 'PX', job.result_ttl)
        redis.call('ZADD', K_results, NOW + job.result_ttl, id)
      end
    elseif kind == 'retrying' then
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
    if ENDS[kind] then
      ended[#ended + 1] = id
    else
      wake(job.queue)
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
flush_counts()
if #ended > 0 then redis.call('PUBLISH', K_done_channel, table.concat(ended, ' ')) end
publish_ready()
return out
