-- pause_schedules: set the paused flag of schedules (ARGV[3] = 0: resume them).
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] 1 to pause, 0 to resume   ARGV[4..] names
-- Returns how many schedules changed.

local changed = 0
for i = 4, #ARGV do
  local key = K_schedule(ARGV[i])
  local paused = redis.call('HGET', key, 'paused')
  if paused and paused ~= ARGV[3] then
    if ARGV[3] == '1' then
      redis.call('HSET', key, 'paused', 1, 'updated_at', NOW)
    else
      -- Slots that passed while paused were refused, not missed: start from now.
      redis.call('HSET', key, 'paused', 0, 'cursor', NOW, 'updated_at', NOW)
    end
    changed = changed + 1
  end
end
return changed
