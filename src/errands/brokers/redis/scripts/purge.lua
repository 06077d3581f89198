-- purge: delete a queue's jobs in the given states, never running ones.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3] queue   ARGV[4..] states
-- Returns how many were deleted; publishes them on the done channel, so a waiter stops
-- waiting for a job that is gone.

local states = {}
for i = 4, #ARGV do
  if ARGV[i] ~= 'running' then states[ARGV[i]] = true end
end
local deleted = {}
local ids = redis.call('ZRANGE', K_queue_ids(ARGV[3]), 0, -1)
for _, id in ipairs(ids) do
  local job = load(id)
  if job and states[job.state] then
    delete(id, job)
    deleted[#deleted + 1] = id
  end
end
if #deleted > 0 then redis.call('PUBLISH', K_done_channel, table.concat(deleted, ' ')) end
flush_counts()
return #deleted
