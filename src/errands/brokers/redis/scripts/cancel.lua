-- cancel: waiting (and pending) jobs end `cancelled` now, with their dependents as
-- _prelude.lua's settle_dependents() says; running ones get a cancel request that extend
-- reports and the rescue applies; terminal ones are unchanged.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] reason   ARGV[4..] ids
-- Returns how many ended now; publishes their ids on the done channel.

local ended = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local job = load(id)
  if job and not TERMINAL[job.state] then
    if job.state == 'running' then
      redis.call('HSET', K_job(id), 'cancel_requested', 1)
    else
      move(id, job, 'cancelled', {cancel_reason = ARGV[3]}, {})
      ended[#ended + 1] = id
    end
  end
end
-- Every job asked ends with the reason given first; then their dependents are settled.
for i = 1, #ended do settle_dependents(ended[i], false, ended) end
if #ended > 0 then redis.call('PUBLISH', K_done_channel, table.concat(ended, ' ')) end
flush_counts()
publish_ready()
return #ended
