-- pause: claims skip these queues until resumed (or, with ARGV[3] = 0, resume them).
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3] 1 to pause, 0 to resume   ARGV[4..] queues
-- Returns nothing; a resume publishes on the ready channel.

for i = 4, #ARGV do
  redis.call('SADD', K_queues, ARGV[i])
  if ARGV[3] == '1' then
    redis.call('SADD', K_paused, ARGV[i])
  else
    redis.call('SREM', K_paused, ARGV[i])
    wake(ARGV[i])
  end
end
publish_ready()
return 0
