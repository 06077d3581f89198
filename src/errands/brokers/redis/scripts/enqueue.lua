-- enqueue: store a batch of job specs, in order, atomically.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)
-- ARGV[3..] ten values per spec: id, task, queue, payload, priority, due (ms; '' = now),
--           max_attempts, max_crashes, result_ttl (ms), idempotency key ('' = none)
-- Returns two values per spec: the id it is stored under, and 1 when it was a duplicate (its
-- id was already stored, or its task's key names a live job), else 0.
-- Publishes the queues of the stored jobs on the ready channel.

local out = insert_specs(3)
flush_counts()
publish_ready()
return out
