-- requeue: failed and cancelled jobs become available with fresh failure and crash budgets.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3..] ids
-- Returns how many moved; publishes on the ready channel when any did.

local moved = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local job = load(id)
  if job and (job.state == 'failed' or job.state == 'cancelled') then
    redis.call('DEL', K_result(id))
    redis.call('ZREM', K_results, id)
    move(id, job, 'available', {failures = 0, crashes = 0, scheduled_at = NOW},
      {'fail_reason', 'cancel_reason', 'cancel_requested', 'finished_at', 'result_expires_at'})
    moved = moved + 1
    wake(job.queue)
  end
end
publish_ready()
flush_counts()
return moved
