-- Every statement the SQLite broker runs. Parameters are named (:now, :ids, ...); a list
-- travels as one JSON text parameter read with json_each, so no statement is built at run time.
-- :now is always the broker's injected clock in ms, never SQLite's own clock, so tests on a
-- FakeClock and every process on the host compare against the same instant.

-- name: migrations_create
CREATE TABLE IF NOT EXISTS migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
);

-- name: migrations_applied
SELECT version FROM migrations ORDER BY version;

-- name: migration_record
INSERT INTO migrations (version, name, applied_at) VALUES (:version, :name, :now);

-- name: idempotency_release
-- Keys are unique per task (index jobs_idempotency); a finished job whose result expired gives
-- its key up, so the key can name a new job. :pairs is a JSON list of [task, key].
UPDATE jobs SET idempotency_key = NULL
WHERE (task, idempotency_key) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:pairs)
)
  AND state IN ('completed', 'failed', 'cancelled') AND result_expires_at <= :now;

-- name: idempotency_owners
SELECT task, idempotency_key, id FROM jobs
WHERE (task, idempotency_key) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:pairs)
);

-- name: job_insert
-- DO NOTHING on a known id or a taken (task, idempotency key): the caller sees the row count
-- fall short and sorts out which specs were repeats (a producer resending a batch whose reply
-- it lost, or racing another for a key). Positional
-- parameters, in the column order, from rows.insert_params: binding by name cost a quarter of
-- a batch enqueue.
INSERT INTO jobs (
    id, task, queue, state, payload, priority, max_attempts, max_crashes,
    enqueued_at, scheduled_at, result_ttl_ms, idempotency_key, workflow_id
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: queue_add
INSERT INTO queues (name) VALUES (:name) ON CONFLICT (name) DO NOTHING;

-- name: queues_paused_among
SELECT name FROM queues WHERE paused = 1 AND name IN (SELECT value FROM json_each(:queues));

-- name: claim_queue
-- Every read of job rows names its columns and casts payload and result to BLOB: a row
-- written by another program with a TEXT or INTEGER payload still reads as bytes, so the
-- worker can dead-letter it instead of failing to fetch it.
-- One queue: the subquery walks jobs_claimable in claim order and stops after :n rows.
-- randomblob runs once per row, so every job gets its own token.
UPDATE jobs SET
    state = 'running', attempt = attempt + 1, started_at = :now, worker_id = :worker_id,
    lease_token = lower(hex(randomblob(16))), lease_expires_at = :expires_at,
    cancel_requested = 0
WHERE id IN (
    SELECT id FROM jobs WHERE state = 'available' AND queue = :queue
    ORDER BY priority DESC, scheduled_at, id LIMIT :n
)
RETURNING
    id, task, queue, state, CAST(payload AS BLOB) AS payload, priority, attempt, failures,
    crashes, max_attempts, max_crashes, enqueued_at, scheduled_at, started_at, finished_at,
    lease_token, lease_expires_at, worker_id, CAST(result AS BLOB) AS result, result_ttl_ms,
    result_expires_at, idempotency_key, fail_reason, cancel_reason, cancel_requested, progress,
    errors, workflow_id;

-- name: claim_candidates
-- Several queues: the best :n of each queue, merged by the caller. One `queue IN (...)`
-- would sort every available job of those queues on each claim.
SELECT id, priority, scheduled_at FROM jobs WHERE state = 'available' AND queue = :queue
ORDER BY priority DESC, scheduled_at, id LIMIT :n;

-- name: claim_ids
UPDATE jobs SET
    state = 'running', attempt = attempt + 1, started_at = :now, worker_id = :worker_id,
    lease_token = lower(hex(randomblob(16))), lease_expires_at = :expires_at,
    cancel_requested = 0
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'available'
RETURNING
    id, task, queue, state, CAST(payload AS BLOB) AS payload, priority, attempt, failures,
    crashes, max_attempts, max_crashes, enqueued_at, scheduled_at, started_at, finished_at,
    lease_token, lease_expires_at, worker_id, CAST(result AS BLOB) AS result, result_ttl_ms,
    result_expires_at, idempotency_key, fail_reason, cancel_reason, cancel_requested, progress,
    errors, workflow_id;

-- name: leases_held
-- The caller compares tokens itself, so one read answers for a whole batch of leases.
SELECT id, lease_token, attempt, cancel_requested FROM jobs
WHERE state = 'running' AND id IN (SELECT value FROM json_each(:ids));

-- name: lease_extend
-- :progress is NULL when the job said nothing new since the last extend.
UPDATE jobs SET lease_expires_at = :expires_at, progress = coalesce(:progress, progress)
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: worker_beat
INSERT INTO workers (id, hostname, pid, queues, concurrency, started_at, running, seen_at)
VALUES (:id, :hostname, :pid, :queues, :concurrency, :started_at, :running, :now)
ON CONFLICT (id) DO UPDATE SET
    hostname = excluded.hostname, pid = excluded.pid, queues = excluded.queues,
    concurrency = excluded.concurrency, started_at = excluded.started_at,
    running = excluded.running, seen_at = excluded.seen_at;

-- name: finish_completed
-- Each finish_* statement repeats the fence (running, same token) although the caller checked
-- it in the same transaction: a statement must never move a job whose lease it does not hold.
UPDATE jobs SET
    state = 'completed', result = :result, finished_at = :now,
    result_expires_at = :now + result_ttl_ms, lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: finish_completed_batch
-- Every Completed outcome of a finish in one statement: :batch is a JSON list of
-- [id, token, result text]; RETURNING names the jobs whose lease held (the fence as above).
-- One statement instead of a read of the leases and an UPDATE per job: the writer thread
-- takes the GIL back once per batch instead of once per row.
UPDATE jobs SET
    state = 'completed', result = CAST(done.result AS BLOB), finished_at = :now,
    result_expires_at = :now + result_ttl_ms, lease_token = NULL, lease_expires_at = NULL
FROM (
    SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS token,
        json_extract(value, '$[2]') AS result
    FROM json_each(:batch)
) AS done
WHERE jobs.id = done.id AND jobs.state = 'running' AND jobs.lease_token = done.token
RETURNING jobs.id;

-- name: finish_retrying
UPDATE jobs SET
    state = 'retryable', failures = failures + 1,
    errors = json_insert(errors, '$[#]', json(:error)), scheduled_at = :scheduled_at,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: finish_failed
-- A failure with no error (e.g. an unknown task) is dead-lettered without counting a failure;
-- the policy's crash cap (reason 'crashed') counts a crash instead.
UPDATE jobs SET
    state = 'failed', fail_reason = :reason,
    failures = failures + (:error IS NOT NULL AND :reason <> 'crashed'),
    crashes = crashes + (:error IS NOT NULL AND :reason = 'crashed'),
    errors = CASE WHEN :error IS NULL THEN errors
                  ELSE json_insert(errors, '$[#]', json(:error)) END,
    finished_at = :now, result_expires_at = :now + result_ttl_ms,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: finish_crashed
-- A NULL :scheduled_at (no delay) keeps the job's own, so a crashed job is due at once and
-- keeps its place ahead of later arrivals. Whether a crash ends the job is the policy's call
-- (it sends finish_failed with reason 'crashed' instead).
UPDATE jobs SET
    state = 'retryable', crashes = crashes + 1,
    errors = json_insert(errors, '$[#]', json(:error)),
    scheduled_at = coalesce(:scheduled_at, scheduled_at),
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: finish_cancelled
UPDATE jobs SET
    state = 'cancelled', cancel_reason = :reason, finished_at = :now,
    result_expires_at = :now + result_ttl_ms, lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: finish_released
-- Charged nothing: attempt stays counted (it never goes down), failures and crashes do not move.
UPDATE jobs SET state = 'available', lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: finish_snoozed
UPDATE jobs SET
    state = 'scheduled', scheduled_at = :scheduled_at, lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: leases_reclaim
-- The rescuer takes over expired leases (and those of workers known to be gone) with fresh
-- tokens, so the old holder's late writes are refused while the policy settles each job.
UPDATE jobs SET lease_token = lower(hex(randomblob(16))), lease_expires_at = :expires_at
WHERE id IN (
    SELECT id FROM jobs
    WHERE state = 'running'
      AND (lease_expires_at <= :now OR worker_id IN (SELECT value FROM json_each(:gone)))
    ORDER BY lease_expires_at LIMIT :limit
)
RETURNING
    id, task, queue, state, CAST(payload AS BLOB) AS payload, priority, attempt, failures,
    crashes, max_attempts, max_crashes, enqueued_at, scheduled_at, started_at, finished_at,
    lease_token, lease_expires_at, worker_id, CAST(result AS BLOB) AS result, result_ttl_ms,
    result_expires_at, idempotency_key, fail_reason, cancel_reason, cancel_requested, progress,
    errors, workflow_id;

-- name: promote_due
-- Every queue, oldest due first. Claims run it too (with :limit -1, no limit), so a due retry
-- needs no promoter pass to be claimed.
UPDATE jobs SET state = 'available'
WHERE id IN (
    SELECT id FROM jobs WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= :now
    ORDER BY scheduled_at, id LIMIT :limit
);

-- name: results_drop
UPDATE jobs SET result = NULL
WHERE result IS NOT NULL AND result_expires_at <= :now
  AND state IN ('completed', 'failed', 'cancelled');

-- name: jobs_prune
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE state IN ('completed', 'failed', 'cancelled') AND finished_at < :finished_before
    ORDER BY finished_at LIMIT :limit
);

-- name: cancel_waiting
UPDATE jobs SET
    state = 'cancelled', cancel_reason = :reason, finished_at = :now,
    result_expires_at = :now + result_ttl_ms
WHERE id IN (SELECT value FROM json_each(:ids))
  AND state IN ('pending', 'scheduled', 'available', 'retryable')
RETURNING id;

-- name: dependency_insert
INSERT INTO dependencies (depends_on, job_id, on_failure) VALUES (?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: dependencies_take
-- The ended jobs' rows, deleted as they fire (dependencies.py); the caller settles each
-- dependent.
DELETE FROM dependencies WHERE depends_on IN (SELECT value FROM json_each(:ids))
RETURNING depends_on, job_id, on_failure;

-- name: pending_cancel
UPDATE jobs SET
    state = 'cancelled', cancel_reason = 'parent_failed', finished_at = :now,
    result_expires_at = :now + result_ttl_ms
WHERE id = :id AND state = 'pending';

-- name: pending_release
-- Released once no dependency is left; a job whose ETA is ahead waits for it as `scheduled`.
UPDATE jobs SET state = CASE WHEN scheduled_at > :now THEN 'scheduled' ELSE 'available' END
WHERE id = :id AND state = 'pending'
  AND NOT EXISTS (SELECT 1 FROM dependencies WHERE job_id = :id)
RETURNING queue;

-- name: cancel_request
-- A running job only gets a request: its worker learns it from extend, or rescue applies it.
UPDATE jobs SET cancel_requested = 1
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running';

-- name: requeue
-- Fresh failure and crash budgets; attempt and the error history are kept.
UPDATE jobs SET
    state = 'available', failures = 0, crashes = 0, fail_reason = NULL, cancel_reason = NULL,
    cancel_requested = 0, scheduled_at = :now, finished_at = NULL, result = NULL,
    result_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND state IN ('failed', 'cancelled');

-- name: purge
-- Never a running job. The caller settles the dependents of those deleted (writes.py).
DELETE FROM jobs
WHERE queue = :queue AND state IN (SELECT value FROM json_each(:states)) AND state <> 'running'
RETURNING id;

-- name: dependencies_of_deleted
-- The rows of purged pending jobs: nothing is left to release them.
DELETE FROM dependencies WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: queue_pause
INSERT INTO queues (name, paused) VALUES (:name, 1)
ON CONFLICT (name) DO UPDATE SET paused = 1;

-- name: queue_resume
UPDATE queues SET paused = 0 WHERE name = :name;

-- name: jobs_by_ids
SELECT
    id, task, queue, state, CAST(payload AS BLOB) AS payload, priority, attempt, failures,
    crashes, max_attempts, max_crashes, enqueued_at, scheduled_at, started_at, finished_at,
    lease_token, lease_expires_at, worker_id, CAST(result AS BLOB) AS result, result_ttl_ms,
    result_expires_at, idempotency_key, fail_reason, cancel_reason, cancel_requested, progress,
    errors, workflow_id
FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: jobs_page
-- Keyset paging on id, newest first; a NULL filter matches every row.
SELECT
    id, task, queue, state, CAST(payload AS BLOB) AS payload, priority, attempt, failures,
    crashes, max_attempts, max_crashes, enqueued_at, scheduled_at, started_at, finished_at,
    lease_token, lease_expires_at, worker_id, CAST(result AS BLOB) AS result, result_ttl_ms,
    result_expires_at, idempotency_key, fail_reason, cancel_reason, cancel_requested, progress,
    errors, workflow_id
FROM jobs
WHERE (:queue IS NULL OR queue = :queue)
  AND (:states IS NULL OR state IN (SELECT value FROM json_each(:states)))
  AND (:task IS NULL OR task = :task)
  AND (:before_id IS NULL OR id < :before_id)
ORDER BY id DESC LIMIT :limit;

-- name: jobs_page_by_workflow
-- A workflow's steps, newest first: a range of jobs_workflow, which holds them in id order.
SELECT
    id, task, queue, state, CAST(payload AS BLOB) AS payload, priority, attempt, failures,
    crashes, max_attempts, max_crashes, enqueued_at, scheduled_at, started_at, finished_at,
    lease_token, lease_expires_at, worker_id, CAST(result AS BLOB) AS result, result_ttl_ms,
    result_expires_at, idempotency_key, fail_reason, cancel_reason, cancel_requested, progress,
    errors, workflow_id
FROM jobs
WHERE workflow_id = :workflow
  AND (:key IS NULL OR idempotency_key = :key)
  AND (:queue IS NULL OR queue = :queue)
  AND (:states IS NULL OR state IN (SELECT value FROM json_each(:states)))
  AND (:task IS NULL OR task = :task)
  AND (:before_id IS NULL OR id < :before_id)
ORDER BY id DESC LIMIT :limit;

-- name: jobs_page_by_key
-- The jobs holding an idempotency key, whatever their task: jobs_idempotency leads with the
-- key, and a key is held by at most one job per task, so the sort is of a handful of rows.
SELECT
    id, task, queue, state, CAST(payload AS BLOB) AS payload, priority, attempt, failures,
    crashes, max_attempts, max_crashes, enqueued_at, scheduled_at, started_at, finished_at,
    lease_token, lease_expires_at, worker_id, CAST(result AS BLOB) AS result, result_ttl_ms,
    result_expires_at, idempotency_key, fail_reason, cancel_reason, cancel_requested, progress,
    errors, workflow_id
FROM jobs
WHERE idempotency_key = :key
  AND (:queue IS NULL OR queue = :queue)
  AND (:states IS NULL OR state IN (SELECT value FROM json_each(:states)))
  AND (:task IS NULL OR task = :task)
  AND (:before_id IS NULL OR id < :before_id)
ORDER BY id DESC LIMIT :limit;

-- name: counts_all
SELECT queue, state, count(*) AS n FROM jobs GROUP BY queue, state;

-- name: counts_of
SELECT queue, state, count(*) AS n FROM jobs
WHERE queue IN (SELECT value FROM json_each(:queues)) GROUP BY queue, state;

-- name: oldest_waiting
-- Per queue (a NULL :queues: every queue), the earliest scheduled_at of its waiting jobs that
-- are due by :now: available ones, and scheduled or retryable ones due but not yet promoted.
-- Index seeks only, never a scan of the waiting jobs: jobs_claimable orders a queue by
-- priority first, so `levels` walks the priorities in use (one seek each, a skip scan) and each
-- level's first entry is its oldest; jobs_due_by_queue gives the rest in one seek per queue.
WITH RECURSIVE wanted (queue) AS (
    SELECT name FROM queues
    WHERE :queues IS NULL OR name IN (SELECT value FROM json_each(:queues))
), levels (queue, priority) AS (
    SELECT queue, (SELECT max(priority) FROM jobs
                   WHERE state = 'available' AND jobs.queue = wanted.queue)
    FROM wanted
    UNION ALL
    SELECT queue, (SELECT max(priority) FROM jobs
                   WHERE state = 'available' AND jobs.queue = levels.queue
                     AND jobs.priority < levels.priority)
    FROM levels WHERE priority IS NOT NULL
)
SELECT queue, min(since) AS since FROM (
    SELECT queue, (SELECT min(scheduled_at) FROM jobs
                   WHERE state = 'available' AND jobs.queue = levels.queue
                     AND jobs.priority = levels.priority) AS since
    FROM levels WHERE priority IS NOT NULL
    UNION ALL
    SELECT queue, (SELECT min(scheduled_at) FROM jobs
                   WHERE state IN ('scheduled', 'retryable') AND jobs.queue = wanted.queue)
    FROM wanted
) WHERE since <= :now GROUP BY queue;

-- name: queues_all
SELECT name, paused FROM queues;

-- name: workers_seen
SELECT * FROM workers WHERE seen_at >= :cutoff ORDER BY id;

-- name: readiness
-- For wait_ready: is a job claimable now (available, or due and promotable by a claim), and
-- if not, when is the next one due. Paused queues count as empty.
WITH wanted AS (
    SELECT value AS name FROM json_each(:queues)
    WHERE value NOT IN (SELECT name FROM queues WHERE paused = 1)
)
SELECT
    EXISTS (SELECT 1 FROM jobs WHERE state = 'available' AND queue IN (SELECT name FROM wanted))
        AS ready,
    (SELECT min(scheduled_at) FROM jobs
     WHERE state IN ('scheduled', 'retryable') AND queue IN (SELECT name FROM wanted))
        AS next_due_at;

-- name: schedules_select
-- A NULL :names selects every schedule.
SELECT
    name, definition, paused, cursor, created_at, updated_at, last_slot, last_job_id,
    last_fired_at, skipped
FROM schedules
WHERE :names IS NULL OR name IN (SELECT value FROM json_each(:names))
ORDER BY name;

-- name: schedule_put
-- A new name starts from now; an existing one changes only when :replace is set and its
-- definition differs, and then starts afresh from now, keeping its flag, last run and skips.
-- The row count tells the caller whether anything changed.
INSERT INTO schedules (name, definition, cursor, created_at, updated_at)
VALUES (:name, :definition, :now, :now, :now)
ON CONFLICT (name) DO UPDATE SET
    definition = excluded.definition, cursor = excluded.cursor, updated_at = excluded.updated_at
WHERE :replace AND definition <> excluded.definition;

-- name: schedules_remove
DELETE FROM schedules WHERE name IN (SELECT value FROM json_each(:names));

-- name: schedules_pause
-- Resuming moves the cursor to now: slots that passed while paused were refused, not missed.
UPDATE schedules SET
    paused = :paused, cursor = CASE WHEN :paused THEN cursor ELSE :now END, updated_at = :now
WHERE name IN (SELECT value FROM json_each(:names)) AND paused <> :paused;

-- name: schedule_holding
-- The fence of Broker.fire: the schedule runs and still has the cursor the firing read.
SELECT skipped FROM schedules WHERE name = :name AND paused = 0 AND cursor = :cursor;

-- name: schedule_advance
-- :ran is set when the firing enqueued jobs: only then is it the schedule's last run.
UPDATE schedules SET
    cursor = :advance_to,
    last_slot = CASE WHEN :ran THEN :last_slot ELSE last_slot END,
    last_job_id = CASE WHEN :ran THEN :last_job_id ELSE last_job_id END,
    last_fired_at = CASE WHEN :ran THEN :now ELSE last_fired_at END,
    skipped = :skipped
WHERE name = :name AND paused = 0 AND cursor = :cursor;

-- name: exchanges_select
SELECT name, kind, unroutable FROM exchanges ORDER BY name;

-- name: bindings_select
SELECT exchange, destination, key FROM bindings ORDER BY exchange, destination, key;

-- name: exchange_put
INSERT INTO exchanges (name, kind, unroutable) VALUES (:name, :kind, :unroutable)
ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, unroutable = excluded.unroutable;

-- name: binding_put
INSERT OR IGNORE INTO bindings (exchange, destination, key) VALUES (:exchange, :destination, :key);

-- name: binding_delete
DELETE FROM bindings WHERE exchange = :exchange AND destination = :destination AND key = :key;
