-- list: one page of jobs, newest first, by keyset on id, filtered by queue, task and states.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3] queue ('' = any)   ARGV[4] task ('' = any)
-- ARGV[5] before id ('' = from the newest)   ARGV[6] limit   ARGV[7..] states (none = any)
-- Returns {1 when more match after this page else 0, then the reply of each job}.
-- The scan walks ids newest first in chunks, so a sparse filter reads more entries but never
-- loads the whole set at once.

local queue, task, before, limit = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local states = {}
local any_state = #ARGV < 7
for i = 7, #ARGV do states[ARGV[i]] = true end
local index = queue ~= '' and K_queue_ids(queue) or K_ids
local cursor = before ~= '' and ('(' .. before) or '+'

local out, found, more = {0}, 0, 0
while more == 0 do
  local chunk = redis.call('ZREVRANGEBYLEX', index, cursor, '-', 'LIMIT', 0, 500)
  if #chunk == 0 then break end
  for _, id in ipairs(chunk) do
    local v = redis.call('HMGET', K_job(id), 'state', 'task')
    if v[1] and (any_state or states[v[1]]) and (task == '' or v[2] == task) then
      if found == limit then
        more = 1
        break
      end
      reply(out, id)
      found = found + 1
    end
  end
  cursor = '(' .. chunk[#chunk]
end
out[1] = more
return out
