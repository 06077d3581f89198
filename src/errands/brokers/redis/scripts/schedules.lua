-- schedules: the stored schedules, all of them or those named.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3] 1 for every schedule, else 0
-- ARGV[4..] the names asked for (when ARGV[3] is 0)
-- Returns per stored schedule (by name for every schedule, else in the order asked): its name,
-- then SCHEDULE_FIELDS in order.

local names = {}
if ARGV[3] == '1' then
  names = redis.call('ZRANGE', K_schedules, 0, -1)  -- all scored 0: by name
else
  for i = 4, #ARGV do names[#names + 1] = ARGV[i] end
end
local out = {}
for _, name in ipairs(names) do
  local values = redis.call('HMGET', K_schedule(name), unpack(SCHEDULE_FIELDS))
  if values[1] then
    out[#out + 1] = name
    for i = 1, #SCHEDULE_FIELDS do out[#out + 1] = values[i] end
  end
end
return out
