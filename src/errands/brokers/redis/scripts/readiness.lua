-- readiness: whether a claim of these queues may find a job now, and when one is next due.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3..] queues
-- Returns {1 if a job is claimable or due now else 0, the next due time (ms) or false, now}.

local due = redis.call('ZRANGE', K_due, 0, 0, 'WITHSCORES')
local next_due = due[2] and tonumber(due[2]) or nil
if next_due and next_due <= NOW then return {1, next_due, NOW} end
for i = 3, #ARGV do
  if redis.call('SISMEMBER', K_paused, ARGV[i]) == 0
      and redis.call('ZCARD', K_ready(ARGV[i])) > 0 then
    return {1, next_due or false, NOW}
  end
end
return {0, next_due or false, NOW}
