-- list: one page of jobs, newest first, by keyset on id, filtered by queue, task, states,
-- workflow and idempotency key.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3] queue ('' = any)   ARGV[4] task ('' = any)
-- ARGV[5] before id ('' = from the newest)   ARGV[6] limit   ARGV[7] workflow id ('' = any)
-- ARGV[8] idempotency key ('' = any)   ARGV[9..] states (none = any)
-- Returns {1 when more match after this page else 0, then the reply of each job}.
-- The ids walked come from the narrowest index the filters name: the workflow's set, else the
-- key's, else each queue's. Each set is walked newest first in chunks, so a sparse filter
-- reads more entries but never loads a whole set at once; without a queue filter, the first
-- limit + 1 matches of every queue are merged (there is no index of all jobs, which would
-- cost every enqueue).

local queue, task, before, limit = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local workflow, key = ARGV[7], ARGV[8]
local states = {}
local any_state = #ARGV < 9
for i = 9, #ARGV do states[ARGV[i]] = true end

local sets
if workflow ~= '' then
  sets = {K_workflow(workflow)}
elseif key ~= '' then
  sets = {K_key_ids(key)}
elseif queue ~= '' then
  sets = {K_queue_ids(queue)}
else
  sets = {}
  for _, name in ipairs(redis.call('SMEMBERS', K_queues)) do sets[#sets + 1] = K_queue_ids(name) end
end

local function wanted(v)
  return v[1] and (any_state or states[v[1]]) and (task == '' or v[2] == task)
    and (queue == '' or v[3] == queue) and (workflow == '' or v[4] == workflow)
    and (key == '' or v[5] == key)
end

local found = {}
for _, set in ipairs(sets) do
  local cursor = before ~= '' and ('(' .. before) or '+'
  local matched = 0
  while matched <= limit do
    local chunk = redis.call('ZREVRANGEBYLEX', set, cursor, '-', 'LIMIT', 0, 500)
    if #chunk == 0 then break end
    for _, id in ipairs(chunk) do
      local v = redis.call('HMGET', K_job(id), 'state', 'task', 'queue', 'workflow_id',
        'idempotency_key')
      if wanted(v) then
        found[#found + 1] = id
        matched = matched + 1
        if matched > limit then break end
      end
    end
    cursor = '(' .. chunk[#chunk]
  end
end
if #sets > 1 then table.sort(found, function(a, b) return a > b end) end

local out = {#found > limit and 1 or 0}
for i = 1, math.min(limit, #found) do reply(out, found[i]) end
return out
