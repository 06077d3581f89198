-- purge: delete a queue's jobs in the given states, never running ones. A purged job counts
-- as ended without completing for the jobs that depend on it: they are settled as cancel.lua
-- settles them (_prelude.lua's settle_dependents), before delete() drops the edges.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] queue   ARGV[4..] states
-- Returns how many were deleted; publishes them, and the dependents cancelled with them, on
-- the done channel, so a waiter stops waiting for a job that is gone or ended.

local states = {}
for i = 4, #ARGV do
  if ARGV[i] ~= 'running' then states[ARGV[i]] = true end
end
local doomed = {}
for _, id in ipairs(redis.call('ZRANGE', K_queue_ids(ARGV[3]), 0, -1)) do
  local job = load(id)
  if job and states[job.state] then doomed[#doomed + 1] = id end
end
local ended = {}
for i = 1, #doomed do settle_dependents(doomed[i], false, ended) end
-- Loaded again: settling may have moved a doomed job (a pending dependent of another one).
local gone = {}
for i = 1, #doomed do
  delete(doomed[i], load(doomed[i]))
  gone[i] = doomed[i]
end
for i = 1, #ended do gone[#gone + 1] = ended[i] end
if #gone > 0 then redis.call('PUBLISH', K_done_channel, table.concat(gone, ' ')) end
flush_counts()
publish_ready()
return #doomed
