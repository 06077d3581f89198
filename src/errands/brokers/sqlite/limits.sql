-- The SQLite broker's statements about rate and concurrency limits (sqlite/limits.py). :now is
-- the broker's clock in ms, :now_us the same instant in µs; lists travel as JSON texts.

-- name: limits_store
-- Run in the enqueue's own transaction, right after the insert: no claim sees the job before
-- its limits.
UPDATE jobs SET limit_key = :limit_key, limits = :limits WHERE id = :id;

-- name: limits_waiting
-- INDEXED BY: else the planner may pick jobs_queue_state and read every available job of the
-- queues (all of them unlimited, when the answer is no) on every claim.
SELECT EXISTS (
    SELECT 1 FROM jobs INDEXED BY jobs_limited
    WHERE state = 'available' AND limits IS NOT NULL
      AND queue IN (SELECT value FROM json_each(:queues))
) AS waiting;

-- name: limits_shut
-- Keys that admit nothing now: their rate's next start is ahead, or their running jobs (with a
-- live lease) fill their cap. Queue keys count every running job of the queue.
SELECT key FROM limit_keys WHERE open_at > :now
UNION
SELECT r.key FROM (
    SELECT limit_key AS key, count(*) AS n FROM jobs
    WHERE state = 'running' AND limit_key IS NOT NULL AND lease_expires_at > :now
    GROUP BY limit_key
    UNION ALL
    SELECT 'queue:' || queue, count(*) FROM jobs
    WHERE state = 'running' AND queue IN (SELECT value FROM json_each(:queues))
      AND lease_expires_at > :now
    GROUP BY queue
) AS r JOIN limit_keys AS k ON k.key = r.key
WHERE k.concurrency IS NOT NULL AND r.n >= k.concurrency;

-- name: limits_candidates
-- The best :n jobs of a queue whose task key is not shut: a flooding key's jobs never fill the
-- window, however many of them come first.
SELECT id, priority, scheduled_at, limits FROM jobs
WHERE state = 'available' AND queue = :queue
  AND (limit_key IS NULL OR limit_key NOT IN (SELECT value FROM json_each(:shut)))
ORDER BY priority DESC, scheduled_at, id LIMIT :n;

-- name: limits_running
SELECT limit_key AS key, count(*) AS n FROM jobs
WHERE state = 'running' AND lease_expires_at > :now
  AND limit_key IN (SELECT value FROM json_each(:keys))
GROUP BY limit_key
UNION ALL
SELECT 'queue:' || queue, count(*) FROM jobs
WHERE state = 'running' AND lease_expires_at > :now
  AND queue IN (SELECT value FROM json_each(:queues))
GROUP BY queue;

-- name: limits_tats
SELECT key, tat_us FROM limit_keys WHERE key IN (SELECT value FROM json_each(:keys));

-- name: limits_keep
INSERT INTO limit_keys (key, tat_us, open_at, concurrency)
VALUES (:key, :tat_us, :open_at, :concurrency)
ON CONFLICT (key) DO UPDATE SET
    tat_us = excluded.tat_us, open_at = excluded.open_at, concurrency = excluded.concurrency;

-- name: limits_forget
-- A key whose GCRA time has passed and that runs nothing is as good as never seen; a few such
-- rows go per claim, so a key per customer does not grow the table for ever. Queue keys stay.
DELETE FROM limit_keys WHERE key IN (
    SELECT key FROM limit_keys
    WHERE tat_us <= :now_us AND key NOT LIKE 'queue:%'
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE state = 'running' AND limit_key = limit_keys.key)
    LIMIT 64
);

-- name: limits_ready
-- For wait_ready: a job of :queues whose task key is not shut.
SELECT EXISTS (
    SELECT 1 FROM jobs
    WHERE state = 'available' AND queue IN (SELECT value FROM json_each(:queues))
      AND queue NOT IN (SELECT name FROM queues WHERE paused = 1)
      AND (limit_key IS NULL OR limit_key NOT IN (SELECT value FROM json_each(:shut)))
) AS ready;

-- name: limits_next_open
SELECT min(open_at) AS at FROM limit_keys
WHERE open_at > :now AND key IN (SELECT value FROM json_each(:keys));
