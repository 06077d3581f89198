-- list: one page of jobs, newest first, by keyset on id, filtered by queue, task and states.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3] queue ('' = any)   ARGV[4] task ('' = any)
-- ARGV[5] before id ('' = from the newest)   ARGV[6] limit   ARGV[7..] states (none = any)
-- Returns {1 when more match after this page else 0, then the reply of each job}.
-- Each queue's ids are walked newest first in chunks, so a sparse filter reads more entries
-- but never loads a whole set at once; without a queue filter, the first limit + 1 matches of
-- every queue are merged (there is no index of all jobs, which would cost every enqueue).

local queue, task, before, limit = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local states = {}
local any_state = #ARGV < 7
for i = 7, #ARGV do states[ARGV[i]] = true end
local queues = queue ~= '' and {queue} or redis.call('SMEMBERS', K_queues)

local found = {}
for _, name in ipairs(queues) do
  local cursor = before ~= '' and ('(' .. before) or '+'
  local matched = 0
  while matched <= limit do
    local chunk = redis.call('ZREVRANGEBYLEX', K_queue_ids(name), cursor, '-', 'LIMIT', 0, 500)
    if #chunk == 0 then break end
    for _, id in ipairs(chunk) do
      local v = redis.call('HMGET', K_job(id), 'state', 'task')
      if v[1] and (any_state or states[v[1]]) and (task == '' or v[2] == task) then
        found[#found + 1] = id
        matched = matched + 1
        if matched > limit then break end
      end
    end
    cursor = '(' .. chunk[#chunk]
  end
end
if #queues > 1 then table.sort(found, function(a, b) return a > b end) end

local out = {#found > limit and 1 or 0}
for i = 1, math.min(limit, #found) do reply(out, found[i]) end
return out
