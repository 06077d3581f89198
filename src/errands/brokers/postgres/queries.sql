-- Every statement the PostgreSQL broker runs, each verb one statement (enqueue with idempotency
-- keys: a short transaction of two or three; a schedule's firing: its fence, its enqueue and
-- its last run, in one transaction). Parameters are psycopg's named ones; a batch
-- travels as arrays read with unnest, so no statement is built at run time and a batch of any
-- size is one statement. Names are unqualified: each connection's search_path is the URL's
-- schema.
--
-- %(now)s is the broker's clock. In production it is the text 'now', which PostgreSQL reads as
-- the start of the current transaction (the server's clock, so every host shares one); a test's
-- injected clock is passed as a timestamptz instead. Either way, one statement sees one instant.
--
-- Writes wake the waiters of other processes with notice(channel, payload) (0001_initial.sql):
-- %(ready)s carries queue names, one a line; %(done)s carries the ids of jobs that ended. Each
-- notice is an aggregate over what the statement changed, so it runs exactly once, and
-- PostgreSQL delivers it only if the transaction commits.

-- name: migrations_create
CREATE TABLE IF NOT EXISTS migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: migrations_applied
SELECT version FROM migrations ORDER BY version;

-- name: migration_record
INSERT INTO migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: migrate_lock
-- Processes migrating one schema at once take turns; the later ones find nothing left to do.
SELECT pg_advisory_xact_lock(%(key)s);

-- name: schema_create
-- {schema} is the URL's schema as a quoted identifier (psycopg.sql), not a parameter.
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: migrate_search_path
-- For the migration's transaction only (is_local): the new tables land in the URL's schema.
SELECT set_config('search_path', %(search_path)s, true);

-- name: session_setup
-- Run on each new connection of the pool (autocommit): names resolve in the URL's schema, and
-- timestamptz values come back in UTC.
SELECT set_config('search_path', %(search_path)s, false), set_config('TimeZone', 'UTC', false);

-- name: enqueue_release
-- A finished job whose result expired gives its (task, key) up, so the key can name a new job.
-- Run before the insert, in the same transaction, only for batches that carry keys.
UPDATE jobs AS j SET idempotency_key = NULL
FROM unnest(%(tasks)s::text[], %(keys)s::text[]) AS k (task, key)
WHERE j.task = k.task AND j.idempotency_key = k.key
  AND j.state IN ('completed', 'failed', 'cancelled')
  AND j.result_expires_at <= %(now)s::timestamptz;

-- name: enqueue
-- DO NOTHING on a known id or a taken (task, idempotency key): the unique indexes decide, also
-- against producers racing in other transactions (an insert waits for the one that holds the
-- key to commit or roll back). The caller sorts out the specs left out (enqueue_owners).
-- A past ETA is stored as now, like the memory broker: claim order is arrival order.
WITH inserted AS (
    INSERT INTO jobs (
        id, task, queue, state, payload, priority, max_attempts, max_crashes,
        enqueued_at, scheduled_at, result_ttl, idempotency_key, workflow_id
    )
    SELECT
        s.id, s.task, s.queue,
        CASE WHEN s.pending THEN 'pending'
             WHEN s.due > %(now)s::timestamptz THEN 'scheduled' ELSE 'available' END,
        s.payload, s.priority, s.max_attempts, s.max_crashes, %(now)s::timestamptz,
        CASE WHEN s.due > %(now)s::timestamptz THEN s.due ELSE %(now)s::timestamptz END,
        s.result_ttl, s.idempotency_key, s.workflow_id
    FROM unnest(
        %(ids)s::text[], %(tasks)s::text[], %(queues)s::text[], %(payloads)s::bytea[],
        %(priorities)s::integer[], %(dues)s::timestamptz[], %(max_attempts)s::integer[],
        %(max_crashes)s::integer[], %(result_ttls)s::interval[], %(keys)s::text[],
        %(pending)s::boolean[], %(workflows)s::text[]
    ) WITH ORDINALITY AS s (
        id, task, queue, payload, priority, due, max_attempts, max_crashes, result_ttl,
        idempotency_key, pending, workflow_id, position
    )
    ORDER BY s.position
    ON CONFLICT DO NOTHING
    RETURNING id, queue
),
known AS (
    INSERT INTO queues (name) SELECT DISTINCT queue FROM inserted ON CONFLICT DO NOTHING
)
-- A scheduled job wakes its queue's waiters too: one may be asleep past its due time.
SELECT
    coalesce(array_agg(id), '{}') AS ids,
    notice(%(ready)s, string_agg(DISTINCT queue, E'\n')) AS noticed
FROM inserted;

-- name: dependencies_insert
-- The dependencies of the pending jobs an enqueue just stored (:stored), in its transaction.
INSERT INTO dependencies (depends_on, job_id, on_failure)
SELECT d.depends_on, d.job_id, d.on_failure
FROM unnest(%(parents)s::text[], %(children)s::text[], %(policies)s::text[])
    AS d (depends_on, job_id, on_failure)
WHERE d.job_id = ANY(%(stored)s::text[])
ON CONFLICT DO NOTHING;

-- name: enqueue_owners
-- For the specs the insert left out: is the id stored (a resend), and which job holds the key.
SELECT s.position, stored.id IS NOT NULL AS stored, owner.id AS owner
FROM unnest(%(ids)s::text[], %(tasks)s::text[], %(keys)s::text[]) WITH ORDINALITY
    AS s (id, task, key, position)
LEFT JOIN jobs AS stored ON stored.id = s.id
LEFT JOIN jobs AS owner ON owner.task = s.task AND owner.idempotency_key = s.key
ORDER BY s.position;

-- name: claim
-- One statement: promote every due job (up to :promote_limit, of any queue, as the memory
-- broker does), and lease the best :n claimable jobs of the unpaused queues asked.
-- `ready` takes the best :n of each queue from jobs_claimable (a LATERAL join per queue, so a
-- claim reads only the rows it may take, however many are stored); due jobs of those queues
-- compete with them, and the rest of the due jobs become available. SKIP LOCKED: concurrent
-- claimers never wait for each other and never take the same job. A row is updated once: the
-- due jobs claimed go straight to running. Rows come back in claim order.
-- It takes no job with limits, and none at all while one is available in its queues: the caller
-- then claims through postgres/limits.py, which takes every kind in claim order.
WITH open AS (
    SELECT q.name FROM unnest(%(queues)s::text[]) AS q (name)
    WHERE NOT EXISTS (SELECT 1 FROM queues WHERE queues.name = q.name AND queues.paused)
),
due AS MATERIALIZED (
    SELECT id, queue, priority, scheduled_at, limits IS NULL AS plain FROM jobs
    WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= %(now)s::timestamptz
    ORDER BY scheduled_at, id
    LIMIT %(promote_limit)s
    FOR UPDATE SKIP LOCKED
),
ready AS MATERIALIZED (
    SELECT best.id, best.priority, best.scheduled_at
    FROM open
    CROSS JOIN LATERAL (
        SELECT id, priority, scheduled_at FROM jobs
        WHERE state = 'available' AND queue = open.name AND limits IS NULL
        ORDER BY priority DESC, scheduled_at, id
        LIMIT %(n)s
        FOR UPDATE SKIP LOCKED
    ) AS best
),
picked AS MATERIALIZED (
    SELECT id FROM (
        SELECT id, priority, scheduled_at FROM ready
        UNION ALL
        SELECT id, priority, scheduled_at FROM due WHERE plain AND queue IN (SELECT name FROM open)
    ) AS candidates
    WHERE NOT EXISTS (
        SELECT 1 FROM jobs
        WHERE state = 'available' AND limits IS NOT NULL AND queue IN (SELECT name FROM open)
    )
    ORDER BY priority DESC, scheduled_at, id
    LIMIT %(n)s
),
promoted AS (
    UPDATE jobs AS j SET state = 'available'
    FROM due
    WHERE j.id = due.id AND due.id NOT IN (SELECT id FROM picked)
    RETURNING j.queue
),
claimed AS (
    UPDATE jobs AS j SET
        state = 'running', attempt = j.attempt + 1, started_at = %(now)s::timestamptz,
        worker_id = %(worker_id)s, lease_token = replace(gen_random_uuid()::text, '-', ''),
        lease_expires_at = %(now)s::timestamptz + %(lease)s::interval,
        cancel_requested = false
    FROM picked
    WHERE j.id = picked.id
    RETURNING
        j.id, j.task, j.queue, j.state, j.payload, j.priority, j.attempt, j.failures,
        j.crashes, j.max_attempts, j.max_crashes, j.enqueued_at, j.scheduled_at, j.started_at,
        j.finished_at, j.lease_token, j.lease_expires_at, j.worker_id, j.result, j.result_ttl,
        j.result_expires_at, j.idempotency_key, j.fail_reason, j.cancel_reason,
        j.cancel_requested, j.progress::text AS progress, j.errors::text AS errors, j.workflow_id
),
-- The workers of other queues learn of the jobs promoted for them.
noticed AS (
    SELECT notice(%(ready)s, string_agg(DISTINCT queue, E'\n')) AS sent FROM promoted
)
-- Outer-joined to `noticed` (one row), so the notice is sent even when nothing is claimed;
-- that row alone (all NULL) is what an empty claim returns.
SELECT claimed.* FROM noticed LEFT JOIN claimed ON true
ORDER BY claimed.priority DESC, claimed.scheduled_at, claimed.id;

-- name: extend
-- Push back every lease whose token holds, store what the jobs said, record the heartbeat.
WITH beat AS (
    INSERT INTO workers (id, hostname, pid, queues, concurrency, started_at, running, seen_at)
    VALUES (
        %(worker_id)s, %(hostname)s, %(pid)s, %(worker_queues)s::text[], %(concurrency)s,
        %(started_at)s, %(running)s, %(now)s::timestamptz
    )
    ON CONFLICT (id) DO UPDATE SET
        hostname = excluded.hostname, pid = excluded.pid, queues = excluded.queues,
        concurrency = excluded.concurrency, started_at = excluded.started_at,
        running = excluded.running, seen_at = excluded.seen_at
)
-- :progress holds NULL for a job that said nothing new since the last extend.
UPDATE jobs AS j SET
    lease_expires_at = %(now)s::timestamptz + %(lease)s::interval,
    progress = coalesce(l.progress, j.progress)
FROM unnest(%(ids)s::text[], %(tokens)s::text[], %(progress)s::jsonb[]) AS l (id, token, progress)
WHERE j.id = l.id AND j.state = 'running' AND j.lease_token = l.token
RETURNING j.id, j.lease_token, j.cancel_requested, j.lease_expires_at;

-- name: finish
-- One row per outcome, already turned into its transition by the broker (rows.transition,
-- the memory broker's _apply): the next state, what to add to failures and crashes, the error
-- to append, the reasons, the result, and the delay until it is due again (NULL: keep
-- scheduled_at, as a crash with no delay does). The fence is in the WHERE: a row moves only if
-- it is running under the token presented. Returns the positions applied.
WITH outcome AS (
    SELECT * FROM unnest(
        %(ids)s::text[], %(tokens)s::text[], %(states)s::text[], %(failures)s::integer[],
        %(crashes)s::integer[], %(errors)s::jsonb[], %(fail_reasons)s::text[],
        %(cancel_reasons)s::text[], %(results)s::bytea[], %(delays)s::interval[]
    ) WITH ORDINALITY AS o (
        id, token, state, failures, crashes, error, fail_reason, cancel_reason, result, delay,
        position
    )
),
moved AS (
    UPDATE jobs AS j SET
        state = o.state,
        failures = j.failures + o.failures,
        crashes = j.crashes + o.crashes,
        errors = CASE WHEN o.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(o.error) END,
        fail_reason = coalesce(o.fail_reason, j.fail_reason),
        cancel_reason = coalesce(o.cancel_reason, j.cancel_reason),
        result = CASE WHEN o.state = 'completed' THEN o.result ELSE j.result END,
        scheduled_at = coalesce(%(now)s::timestamptz + o.delay, j.scheduled_at),
        finished_at = CASE WHEN o.state IN ('completed', 'failed', 'cancelled')
                           THEN %(now)s::timestamptz ELSE j.finished_at END,
        result_expires_at = CASE WHEN o.state IN ('completed', 'failed', 'cancelled')
                                 THEN %(now)s::timestamptz + j.result_ttl
                                 ELSE j.result_expires_at END,
        lease_token = NULL,
        lease_expires_at = NULL
    FROM outcome AS o
    WHERE j.id = o.id AND j.state = 'running' AND j.lease_token = o.token
    RETURNING o.position, j.id, j.queue, j.state
)
SELECT
    coalesce(array_agg(position), '{}') AS applied,
    notice(
        %(done)s,
        string_agg(id, ' ') FILTER (WHERE state IN ('completed', 'failed', 'cancelled'))
    ) AS noticed_done,
    notice(
        %(ready)s,
        string_agg(DISTINCT queue, E'\n') FILTER (WHERE state IN ('available', 'scheduled',
                                                                  'retryable'))
    ) AS noticed_ready,
    -- The jobs that wait for those that ended, settled in this transaction (0004_workflows):
    -- settle() writes only pending jobs and dependencies, which this statement leaves alone.
    settle(
        coalesce(array_agg(id) FILTER (WHERE state IN ('completed', 'failed', 'cancelled')),
                 '{}'),
        coalesce(array_agg(state = 'completed')
                 FILTER (WHERE state IN ('completed', 'failed', 'cancelled')), '{}'),
        %(now)s::timestamptz, %(ready)s, %(done)s
    ) AS settled
FROM moved;

-- name: reclaim
-- The rescuer takes over expired leases (and those of workers known to be gone) with fresh
-- tokens, so the old holder's late writes are refused while the policy settles each job.
-- Attempt, worker_id and a pending cancel are kept. Only the maintenance leader acts: a
-- worker that does not get the transaction-scoped advisory lock :leader takes nothing this
-- pass, so rescuers on many hosts never contend for the same rows.
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE (SELECT pg_try_advisory_xact_lock(%(leader)s))
      AND state = 'running'
      AND (lease_expires_at <= %(now)s::timestamptz OR worker_id = ANY(%(gone)s::text[]))
    ORDER BY lease_expires_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j SET
    lease_token = replace(gen_random_uuid()::text, '-', ''),
    lease_expires_at = %(now)s::timestamptz + %(lease)s::interval
FROM picked
WHERE j.id = picked.id
RETURNING
    j.id, j.task, j.queue, j.state, j.payload, j.priority, j.attempt, j.failures,
    j.crashes, j.max_attempts, j.max_crashes, j.enqueued_at, j.scheduled_at, j.started_at,
    j.finished_at, j.lease_token, j.lease_expires_at, j.worker_id, j.result, j.result_ttl,
    j.result_expires_at, j.idempotency_key, j.fail_reason, j.cancel_reason,
    j.cancel_requested, j.progress::text AS progress, j.errors::text AS errors, j.workflow_id;

-- name: promote
-- Due scheduled and retryable jobs of every queue become available, oldest due first; only
-- the maintenance leader (:leader, as in reclaim) moves them; claims promote on their own.
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE (SELECT pg_try_advisory_xact_lock(%(leader)s))
      AND state IN ('scheduled', 'retryable') AND scheduled_at <= %(now)s::timestamptz
    ORDER BY scheduled_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
moved AS (
    UPDATE jobs AS j SET state = 'available' FROM picked WHERE j.id = picked.id
    RETURNING j.queue
)
SELECT count(*) AS moved, notice(%(ready)s, string_agg(DISTINCT queue, E'\n')) AS noticed
FROM moved;

-- name: prune
-- Delete up to :limit terminal jobs finished before :finished_before (oldest first) and drop
-- every result past its expiry; the two sets are kept apart, as a statement may change a row
-- only once. Only the maintenance leader (:leader) prunes.
WITH doomed AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE (SELECT pg_try_advisory_xact_lock(%(leader)s))
      AND state IN ('completed', 'failed', 'cancelled')
      AND finished_at < %(finished_before)s
    ORDER BY finished_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
dropped AS (
    UPDATE jobs SET result = NULL
    WHERE (SELECT pg_try_advisory_xact_lock(%(leader)s))
      AND result IS NOT NULL AND result_expires_at <= %(now)s::timestamptz
      AND state IN ('completed', 'failed', 'cancelled')
      AND id NOT IN (SELECT id FROM doomed)
),
deleted AS (
    DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) RETURNING id
)
SELECT count(*) AS deleted FROM deleted;

-- name: jobs_by_ids
SELECT
    id, task, queue, state, payload, priority, attempt, failures, crashes, max_attempts,
    max_crashes, enqueued_at, scheduled_at, started_at, finished_at, lease_token,
    lease_expires_at, worker_id, result, result_ttl, result_expires_at, idempotency_key,
    fail_reason, cancel_reason, cancel_requested, progress::text AS progress,
    errors::text AS errors, workflow_id
FROM jobs WHERE id = ANY(%(ids)s::text[]);

-- name: jobs_page
-- Keyset paging on id, newest first; a NULL filter matches every row.
SELECT
    id, task, queue, state, payload, priority, attempt, failures, crashes, max_attempts,
    max_crashes, enqueued_at, scheduled_at, started_at, finished_at, lease_token,
    lease_expires_at, worker_id, result, result_ttl, result_expires_at, idempotency_key,
    fail_reason, cancel_reason, cancel_requested, progress::text AS progress,
    errors::text AS errors, workflow_id
FROM jobs
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))
  AND (%(task)s::text IS NULL OR task = %(task)s::text)
  AND (%(before_id)s::text IS NULL OR id < %(before_id)s::text)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: jobs_page_by_workflow
-- A workflow's steps, newest first: a range of jobs_workflow, which holds them in id order.
-- A statement of its own: written as "NULL matches every row", a generic plan would not use it.
SELECT
    id, task, queue, state, payload, priority, attempt, failures, crashes, max_attempts,
    max_crashes, enqueued_at, scheduled_at, started_at, finished_at, lease_token,
    lease_expires_at, worker_id, result, result_ttl, result_expires_at, idempotency_key,
    fail_reason, cancel_reason, cancel_requested, progress::text AS progress,
    errors::text AS errors, workflow_id
FROM jobs
WHERE workflow_id = %(workflow)s::text
  AND (%(key)s::text IS NULL OR idempotency_key = %(key)s::text)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))
  AND (%(task)s::text IS NULL OR task = %(task)s::text)
  AND (%(before_id)s::text IS NULL OR id < %(before_id)s::text)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: jobs_page_by_key
-- The jobs holding an idempotency key, whatever their task: jobs_idempotency leads with the
-- key, and a key is held by at most one job per task, so the sort is of a handful of rows.
SELECT
    id, task, queue, state, payload, priority, attempt, failures, crashes, max_attempts,
    max_crashes, enqueued_at, scheduled_at, started_at, finished_at, lease_token,
    lease_expires_at, worker_id, result, result_ttl, result_expires_at, idempotency_key,
    fail_reason, cancel_reason, cancel_requested, progress::text AS progress,
    errors::text AS errors, workflow_id
FROM jobs
WHERE idempotency_key = %(key)s::text
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))
  AND (%(task)s::text IS NULL OR task = %(task)s::text)
  AND (%(before_id)s::text IS NULL OR id < %(before_id)s::text)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: counts
-- Jobs per queue and state (NULL :queues: every queue), then every known queue with a NULL
-- state and whether it is paused, so empty queues are listed too, then each queue's `since`:
-- the earliest scheduled_at of its jobs waiting and due by :now. That takes index seeks, not
-- a scan of the waiting jobs: jobs_claimable orders a queue by priority first, so `levels`
-- walks the priorities in use (one seek each, a skip scan) and each level's first entry is its
-- oldest; scheduled and retryable jobs due but not yet promoted are a range of jobs_due.
-- `wanted` unnests an array rather than reading `queues` directly: that small table is never
-- analyzed, and its default estimate (about 1,300 rows) made the recursion look costly enough
-- to be JIT-compiled, 30 ms on every call; an unnest is estimated at 10.
WITH RECURSIVE wanted AS (
    SELECT unnest(ARRAY(
        SELECT name FROM queues WHERE %(queues)s::text[] IS NULL OR name = ANY(%(queues)s::text[])
    )) AS queue
), levels (queue, priority) AS (
    SELECT queue, (SELECT max(priority) FROM jobs
                   WHERE state = 'available' AND jobs.queue = wanted.queue)
    FROM wanted
    UNION ALL
    SELECT queue, (SELECT max(priority) FROM jobs
                   WHERE state = 'available' AND jobs.queue = levels.queue
                     AND jobs.priority < levels.priority)
    FROM levels WHERE priority IS NOT NULL
), candidates AS (
    SELECT queue, (SELECT min(scheduled_at) FROM jobs
                   WHERE state = 'available' AND jobs.queue = levels.queue
                     AND jobs.priority = levels.priority) AS since
    FROM levels WHERE priority IS NOT NULL
    UNION ALL
    SELECT queue, min(scheduled_at) FROM jobs
    WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= %(now)s::timestamptz
      AND queue IN (SELECT queue FROM wanted)
    GROUP BY queue
)
SELECT queue, state, count(*) AS n, false AS paused, NULL::timestamptz AS since FROM jobs
WHERE %(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[])
GROUP BY queue, state
UNION ALL
SELECT name, NULL, 0, paused, NULL FROM queues
UNION ALL
SELECT queue, NULL, 0, false, min(since) FROM candidates
WHERE since <= %(now)s::timestamptz
GROUP BY queue;

-- name: workers_seen
SELECT id, hostname, pid, queues, concurrency, started_at, running, seen_at FROM workers
WHERE seen_at >= %(now)s::timestamptz - %(ttl)s::interval
ORDER BY id;

-- name: readiness
-- For wait_ready: is a job of the unpaused :queues claimable now, and in how many seconds is
-- the next scheduled or retryable job of any queue due (a claim of any queue promotes it).
SELECT
    EXISTS (
        SELECT 1 FROM unnest(%(queues)s::text[]) AS q (name)
        WHERE NOT EXISTS (SELECT 1 FROM queues WHERE queues.name = q.name AND queues.paused)
          AND EXISTS (SELECT 1 FROM jobs WHERE state = 'available' AND queue = q.name)
    ) AS ready,
    extract(epoch FROM (
        SELECT min(scheduled_at) FROM jobs WHERE state IN ('scheduled', 'retryable')
    ) - %(now)s::timestamptz)::float8 AS due_in;

-- name: cancel
-- Waiting jobs end now; running ones get a request their worker learns from extend (or the
-- rescue applies). Terminal jobs are left alone.
WITH ended AS (
    UPDATE jobs SET
        state = 'cancelled', cancel_reason = %(reason)s, finished_at = %(now)s::timestamptz,
        result_expires_at = %(now)s::timestamptz + result_ttl
    WHERE id = ANY(%(ids)s::text[])
      AND state IN ('pending', 'scheduled', 'available', 'retryable')
    RETURNING id
),
requested AS (
    UPDATE jobs SET cancel_requested = true
    WHERE id = ANY(%(ids)s::text[]) AND state = 'running'
    RETURNING id
)
SELECT
    (SELECT count(*) FROM requested) AS requested,
    count(*) AS ended,
    notice(%(done)s, string_agg(id, ' ')) AS noticed,
    coalesce(array_agg(id), '{}') AS ids
FROM ended;

-- name: settle
-- After a cancel or a purge, in its transaction: the dependents of the jobs it ended or
-- deleted, which count as ended without completing (0004_workflows).
SELECT settle(%(ids)s::text[], %(completed)s::boolean[], %(now)s::timestamptz, %(ready)s,
              %(done)s);

-- name: requeue
-- Failed and cancelled jobs run again with fresh failure and crash budgets; attempt and the
-- error history are kept.
WITH moved AS (
    UPDATE jobs SET
        state = 'available', failures = 0, crashes = 0, fail_reason = NULL,
        cancel_reason = NULL, cancel_requested = false, scheduled_at = %(now)s::timestamptz,
        finished_at = NULL, result = NULL, result_expires_at = NULL
    WHERE id = ANY(%(ids)s::text[]) AND state IN ('failed', 'cancelled')
    RETURNING queue
)
SELECT count(*) AS moved, notice(%(ready)s, string_agg(DISTINCT queue, E'\n')) AS noticed
FROM moved;

-- name: purge
-- Never a running job. A waiter on a deleted job stops waiting for it (the done notice). A
-- deleted pending job's own dependency rows go with it, as nothing is left for them to
-- release; its dependents are settled next, in the same transaction (control.py).
WITH deleted AS (
    DELETE FROM jobs
    WHERE queue = %(queue)s AND state = ANY(%(states)s::text[]) AND state <> 'running'
    RETURNING id
),
unlinked AS (
    DELETE FROM dependencies WHERE job_id IN (SELECT id FROM deleted)
)
SELECT
    count(*) AS deleted,
    notice(%(done)s, string_agg(id, ' ')) AS noticed,
    coalesce(array_agg(id), '{}') AS ids
FROM deleted;

-- name: pause
INSERT INTO queues (name, paused) SELECT DISTINCT unnest(%(queues)s::text[]), true
ON CONFLICT (name) DO UPDATE SET paused = true;

-- name: resume
WITH resumed AS (
    UPDATE queues SET paused = false WHERE name = ANY(%(queues)s::text[]) RETURNING name
)
SELECT notice(%(ready)s, string_agg(name, E'\n')) AS noticed FROM resumed;

-- name: schedules_select
-- A NULL :names lists every schedule.
SELECT
    name, definition, paused, cursor, created_at, updated_at, last_slot, last_job_id,
    last_fired_at, skipped::text AS skipped
FROM schedules
WHERE %(names)s::text[] IS NULL OR name = ANY(%(names)s::text[])
ORDER BY name;

-- name: schedules_put
-- One row per name, settled by schedules.py: the definition the batch leaves it with, and
-- :varying, the names the batch itself redefines (one given twice with two definitions). A new
-- name is stored with cursor = created_at = now; an existing one is rewritten only with
-- :replace and a change, and keeps its flags, last run and skipped records. The insert decides
-- against racing writers (the primary key). Returns, per name, its definition before the
-- statement (NULL: new; the main query sees no write of its CTEs) and whether it was written.
WITH entry AS (
    SELECT * FROM unnest(%(names)s::text[], %(definitions)s::text[]) AS e (name, definition)
),
written AS (
    INSERT INTO schedules AS s (name, definition, cursor, created_at, updated_at)
    SELECT name, definition, %(now)s::timestamptz, %(now)s::timestamptz, %(now)s::timestamptz
    FROM entry
    ORDER BY name
    ON CONFLICT (name) DO UPDATE SET
        definition = excluded.definition, cursor = excluded.cursor,
        updated_at = excluded.updated_at
    WHERE %(replace)s
      AND (s.definition <> excluded.definition OR s.name = ANY(%(varying)s::text[]))
    RETURNING s.name
)
SELECT entry.name, before.definition AS before, written.name IS NOT NULL AS written
FROM entry
LEFT JOIN schedules AS before ON before.name = entry.name
LEFT JOIN written ON written.name = entry.name;

-- name: schedules_remove
WITH removed AS (DELETE FROM schedules WHERE name = ANY(%(names)s::text[]) RETURNING name)
SELECT count(*) AS removed FROM removed;

-- name: schedules_pause
-- Resuming moves the cursor to now: the slots that passed while paused were refused, not
-- missed.
WITH changed AS (
    UPDATE schedules SET
        paused = %(paused)s,
        cursor = CASE WHEN %(paused)s THEN cursor ELSE %(now)s::timestamptz END,
        updated_at = %(now)s::timestamptz
    WHERE name = ANY(%(names)s::text[]) AND paused <> %(paused)s
    RETURNING name
)
SELECT count(*) AS changed FROM changed;

-- name: schedule_fire
-- The fence of exactly-once, first statement of a firing's transaction: the row moves only if
-- the schedule runs and still has the cursor the firing read. A firing racing another waits
-- for the row lock, then re-reads the row (READ COMMITTED), finds the cursor moved and matches
-- nothing. The skipped records are appended, keeping the newest :keep.
UPDATE schedules AS s SET
    cursor = %(advance_to)s,
    skipped = (
        SELECT coalesce(jsonb_agg(r.item ORDER BY r.n), '[]')
        FROM jsonb_array_elements(s.skipped || to_jsonb(%(skipped)s::jsonb[]))
            WITH ORDINALITY AS r (item, n)
        WHERE r.n > jsonb_array_length(s.skipped) + cardinality(%(skipped)s::jsonb[]) - %(keep)s
    )
WHERE s.name = %(name)s AND s.cursor = %(cursor)s AND NOT s.paused
RETURNING s.name;

-- name: schedule_ran
-- After a firing's jobs are stored, in its transaction: its last run.
UPDATE schedules SET
    last_slot = %(last_slot)s, last_job_id = %(last_job_id)s,
    last_fired_at = %(now)s::timestamptz
WHERE name = %(name)s;

-- name: topology_select
-- Every exchange, then every binding, each sorted as Broker.topology lists them (the columns
-- are COLLATE "C", Python's order): one statement, so one snapshot of both tables.
SELECT * FROM (
    SELECT 0 AS part, name AS a, kind AS b, unroutable AS c FROM exchanges
    UNION ALL
    SELECT 1, exchange, destination, key FROM bindings
) AS stored
ORDER BY part, a, b, c;

-- name: topology_declare
-- Exchanges (a name declared again takes the new kind and flag) and bindings (each stored
-- once) in one statement; the caller sends each name and binding once, in order, so racing
-- declares lock rows in one order.
WITH declared AS (
    INSERT INTO exchanges (name, kind, unroutable)
    SELECT * FROM unnest(%(names)s::text[], %(kinds)s::text[], %(unroutables)s::text[])
    ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, unroutable = excluded.unroutable
)
INSERT INTO bindings (exchange, destination, key)
SELECT * FROM unnest(%(exchanges)s::text[], %(destinations)s::text[], %(keys)s::text[])
ON CONFLICT DO NOTHING;

-- name: topology_unbind
WITH gone AS (
    DELETE FROM bindings AS b
    USING unnest(%(exchanges)s::text[], %(destinations)s::text[], %(keys)s::text[])
        AS u (exchange, destination, key)
    WHERE b.exchange = u.exchange AND b.destination = u.destination AND b.key = u.key
    RETURNING 1
)
SELECT count(*) AS deleted FROM gone;
