-- counts: jobs per state of each queue, and the paused queues.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3] 1 for every queue, else 0
-- ARGV[4..] the queues asked for (when ARGV[3] is 0)
-- Returns {paused queues, then per queue: name, {state, n, state, n, ...}}.

local queues = {}
if ARGV[3] == '1' then
  queues = redis.call('SMEMBERS', K_queues)
else
  for i = 4, #ARGV do queues[#queues + 1] = ARGV[i] end
end
local out = {redis.call('SMEMBERS', K_paused)}
for _, queue in ipairs(queues) do
  out[#out + 1] = queue
  out[#out + 1] = redis.call('HGETALL', K_counts(queue))
end
return out
