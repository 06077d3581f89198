-- remove_schedules: delete schedules (not their jobs).
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3..] names
-- Returns how many of them existed.

local removed = 0
for i = 3, #ARGV do
  removed = removed + redis.call('DEL', K_schedule(ARGV[i]))
  redis.call('ZREM', K_schedules, ARGV[i])
end
return removed
