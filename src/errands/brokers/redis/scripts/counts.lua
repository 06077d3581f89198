-- counts: jobs per state of each queue, the paused queues, and each queue's oldest due job.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, or '' for the server's clock)   ARGV[3] 1 for every queue, else 0
-- ARGV[4..] the queues asked for (when ARGV[3] is 0)
-- Returns {paused queues, then per queue: name, {state, n, state, n, ...}, since}, where since
-- is the earliest scheduled_at (ms) of the queue's due waiting jobs, or false when it has none.

-- Due scheduled and retryable jobs not yet promoted, read from P:due in due order: promotion
-- keeps this short while workers run; the cap bounds the script when none do for long (a queue
-- whose due jobs all lie past it is judged by its available jobs alone).
local DUE_SCAN = 1000

local queues = {}
if ARGV[3] == '1' then
  queues = redis.call('SMEMBERS', K_queues)
else
  for i = 4, #ARGV do queues[#queues + 1] = ARGV[i] end
end

-- The oldest scheduled_at of a queue's available jobs. Ready members sort by priority, then
-- scheduled_at, so each priority level's first member is that level's oldest: one ZRANGEBYLEX
-- per level in use, never a walk over the set. '~' sorts after every hex digit of a rank.
local function oldest_ready(queue)
  local key = K_ready(queue)
  local best = nil
  local member = redis.call('ZRANGE', key, 0, 0)[1]
  while member do
    local at = tonumber(string.sub(member, 13, 24), 16)
    if not best or at < best then best = at end
    local level = string.sub(member, 1, 12)
    member = redis.call('ZRANGEBYLEX', key, '(' .. level .. '~', '+', 'LIMIT', 0, 1)[1]
  end
  return best
end

local due_since = {}
local due = redis.call('ZRANGEBYSCORE', K_due, '-inf', NOW, 'WITHSCORES', 'LIMIT', 0, DUE_SCAN)
for i = 1, #due, 2 do
  local queue = redis.call('HGET', K_job(due[i]), 'queue')
  if queue and not due_since[queue] then due_since[queue] = tonumber(due[i + 1]) end
end

local out = {redis.call('SMEMBERS', K_paused)}
for _, queue in ipairs(queues) do
  out[#out + 1] = queue
  out[#out + 1] = redis.call('HGETALL', K_counts(queue))
  local since = oldest_ready(queue)
  local waiting = due_since[queue]
  if waiting and (not since or waiting < since) then since = waiting end
  out[#out + 1] = since or false
end
return out
