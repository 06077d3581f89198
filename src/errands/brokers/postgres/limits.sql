-- The PostgreSQL broker's statements about rate and concurrency limits (postgres/limits.py).
-- %(now)s is the broker's clock ('now', the server's, or a test's instant); %(now_ms)s the same
-- instant in ms, read once per transaction with limits_now.

-- name: limits_store
-- In the enqueue's own transaction, right after the insert: no claim sees the job before its
-- limits.
UPDATE jobs AS j SET limit_key = l.limit_key, limits = l.limits
FROM unnest(%(ids)s::text[], %(limit_keys)s::text[], %(limits)s::text[]) AS l (id, limit_key, limits)
WHERE j.id = l.id;

-- name: limits_now
SELECT floor(extract(epoch FROM %(now)s::timestamptz) * 1000)::bigint AS now_ms;

-- name: limits_waiting
SELECT EXISTS (
    SELECT 1 FROM jobs
    WHERE state = 'available' AND limits IS NOT NULL AND queue = ANY(%(queues)s::text[])
) AS waiting;

-- name: limits_open_queues
SELECT q.name FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS q (name, position)
WHERE NOT EXISTS (SELECT 1 FROM queues WHERE queues.name = q.name AND queues.paused)
ORDER BY q.position;

-- name: limits_shut
-- Keys that admit nothing now: their rate's next start is ahead, or their running jobs (with a
-- live lease) fill their cap. Queue keys count every running job of the queue. A hint read
-- without locks: the gate decides under the keys' locks.
SELECT key FROM limit_keys WHERE open_at > %(now_ms)s
UNION
SELECT r.key FROM (
    SELECT limit_key AS key, count(*) AS n FROM jobs
    WHERE state = 'running' AND limit_key IS NOT NULL
      AND lease_expires_at > %(now)s::timestamptz
    GROUP BY limit_key
    UNION ALL
    SELECT 'queue:' || queue, count(*) FROM jobs
    WHERE state = 'running' AND queue = ANY(%(queues)s::text[])
      AND lease_expires_at > %(now)s::timestamptz
    GROUP BY queue
) AS r JOIN limit_keys AS k ON k.key = r.key
WHERE k.concurrency IS NOT NULL AND r.n >= k.concurrency;

-- name: limits_candidates
-- The best :n jobs of each queue whose task key is not shut, locked (SKIP LOCKED: another
-- claimer's candidates are its own): a flooding key's jobs never fill the window.
SELECT best.id, best.priority, best.scheduled_at, best.limits
FROM unnest(%(queues)s::text[]) AS q (name)
CROSS JOIN LATERAL (
    SELECT id, priority, scheduled_at, limits FROM jobs
    WHERE state = 'available' AND queue = q.name
      AND (limit_key IS NULL OR limit_key <> ALL(%(shut)s::text[]))
    ORDER BY priority DESC, scheduled_at, id
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
) AS best
ORDER BY best.priority DESC, best.scheduled_at, best.id;

-- name: limits_lock
-- Claimers of one key queue up here, so each counts the running jobs of the one before. The
-- caller sorts the keys (no two claimers wait for each other in a circle); unnest keeps their
-- order.
SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%(locks)s::bigint[]) AS k;

-- name: limits_try_lock
-- Keys met in a later round of a claim that already holds others: taken only if free.
SELECT k, pg_try_advisory_xact_lock(k) AS locked FROM unnest(%(locks)s::bigint[]) AS k;

-- name: limits_running
SELECT limit_key AS key, count(*)::integer AS n FROM jobs
WHERE state = 'running' AND lease_expires_at > %(now)s::timestamptz
  AND limit_key = ANY(%(keys)s::text[])
GROUP BY limit_key
UNION ALL
SELECT 'queue:' || queue, count(*)::integer FROM jobs
WHERE state = 'running' AND lease_expires_at > %(now)s::timestamptz
  AND queue = ANY(%(queues)s::text[])
GROUP BY queue;

-- name: limits_tats
SELECT key, tat_us FROM limit_keys WHERE key = ANY(%(keys)s::text[]);

-- name: limits_take
WITH claimed AS (
    UPDATE jobs AS j SET
        state = 'running', attempt = j.attempt + 1, started_at = %(now)s::timestamptz,
        worker_id = %(worker_id)s, lease_token = replace(gen_random_uuid()::text, '-', ''),
        lease_expires_at = %(now)s::timestamptz + %(lease)s::interval,
        cancel_requested = false
    WHERE j.id = ANY(%(ids)s::text[]) AND j.state = 'available'
    RETURNING
        j.id, j.task, j.queue, j.state, j.payload, j.priority, j.attempt, j.failures,
        j.crashes, j.max_attempts, j.max_crashes, j.enqueued_at, j.scheduled_at, j.started_at,
        j.finished_at, j.lease_token, j.lease_expires_at, j.worker_id, j.result, j.result_ttl,
        j.result_expires_at, j.idempotency_key, j.fail_reason, j.cancel_reason,
        j.cancel_requested, j.progress::text AS progress, j.errors::text AS errors, j.workflow_id
)
SELECT * FROM claimed ORDER BY priority DESC, scheduled_at, id;

-- name: limits_keep
INSERT INTO limit_keys (key, tat_us, open_at, concurrency)
SELECT * FROM unnest(
    %(keys)s::text[], %(tats)s::bigint[], %(opens)s::bigint[], %(caps)s::integer[]
)
ON CONFLICT (key) DO UPDATE SET
    tat_us = excluded.tat_us, open_at = excluded.open_at, concurrency = excluded.concurrency;

-- name: limits_forget
-- A key whose GCRA time has passed and that runs nothing is as good as never seen; a few such
-- rows go per claim, so a key per customer does not grow the table for ever. Queue keys stay;
-- a row another claimer holds is left for later.
DELETE FROM limit_keys WHERE key IN (
    SELECT key FROM limit_keys AS k
    WHERE tat_us <= %(now_ms)s * 1000 AND key NOT LIKE 'queue:%%'
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE state = 'running' AND limit_key = k.key)
    LIMIT 64
    FOR UPDATE SKIP LOCKED
);

-- name: limits_ready
-- For wait_ready: a job of the unpaused :queues whose task key is not shut.
SELECT EXISTS (
    SELECT 1 FROM jobs
    WHERE state = 'available' AND queue = ANY(%(queues)s::text[])
      AND NOT EXISTS (SELECT 1 FROM queues WHERE queues.name = jobs.queue AND queues.paused)
      AND (limit_key IS NULL OR limit_key <> ALL(%(shut)s::text[]))
) AS ready;

-- name: limits_next_open
-- In seconds from now, as readiness gives due_in.
SELECT (min(open_at) - %(now_ms)s) / 1000.0 AS opens_in FROM limit_keys
WHERE open_at > %(now_ms)s AND key = ANY(%(keys)s::text[]);
