-- readiness: whether a claim of these queues may find a job now, and when one is next due.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3..] queues
-- Returns {1 if a job is claimable or due now else 0, the next due time (ms) or false, now}.
-- A queue whose jobs the last claim found all held by their limits (P:held:<queue>, see
-- claim.lua) counts as empty while its ready count is unchanged, until the mark expires.

local due = redis.call('ZRANGE', K_due, 0, 0, 'WITHSCORES')
local next_due = due[2] and tonumber(due[2]) or nil
if next_due and next_due <= NOW then return {1, next_due, NOW} end
for i = 3, #ARGV do
  local queue = ARGV[i]
  local size = redis.call('ZCARD', K_ready(queue))
  if redis.call('SISMEMBER', K_paused, queue) == 0 and size > 0 then
    if tonumber(redis.call('GET', K_held(queue))) ~= size then
      return {1, next_due or false, NOW}
    end
    local opens = NOW + math.max(1, redis.call('PTTL', K_held(queue)))
    if not next_due or opens < next_due then next_due = opens end
  end
end
return {0, next_due or false, NOW}
