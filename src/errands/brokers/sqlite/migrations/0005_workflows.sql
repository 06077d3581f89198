-- 0005_workflows: the `pending` state of a job that waits for others, and the dependencies it
-- waits for (brokers/dependencies.py states the rule). SQLite cannot change a CHECK
-- constraint in place, so the jobs table is rebuilt with the same columns and indexes.

CREATE TABLE jobs_rebuilt (
    id                TEXT PRIMARY KEY,
    task              TEXT NOT NULL,
    queue             TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN (
                          'pending', 'scheduled', 'available', 'running', 'retryable',
                          'completed', 'failed', 'cancelled')),
    payload           BLOB NOT NULL,
    priority          INTEGER NOT NULL DEFAULT 0,
    attempt           INTEGER NOT NULL DEFAULT 0,
    failures          INTEGER NOT NULL DEFAULT 0,
    crashes           INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    max_crashes       INTEGER NOT NULL,
    enqueued_at       INTEGER NOT NULL,
    scheduled_at      INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    worker_id         TEXT,
    result            BLOB,
    result_ttl_ms     INTEGER NOT NULL,
    result_expires_at INTEGER,
    idempotency_key   TEXT,
    fail_reason       TEXT,
    cancel_reason     TEXT,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    progress          TEXT,
    errors            TEXT NOT NULL DEFAULT '[]'
);

INSERT INTO jobs_rebuilt SELECT
    id, task, queue, state, payload, priority, attempt, failures, crashes, max_attempts,
    max_crashes, enqueued_at, scheduled_at, started_at, finished_at, lease_token,
    lease_expires_at, worker_id, result, result_ttl_ms, result_expires_at, idempotency_key,
    fail_reason, cancel_reason, cancel_requested, progress, errors
FROM jobs;

DROP TABLE jobs;

ALTER TABLE jobs_rebuilt RENAME TO jobs;

-- The indexes of 0001 and 0002, as they were.
CREATE INDEX jobs_claimable ON jobs (queue, priority DESC, scheduled_at, id)
    WHERE state = 'available';
CREATE INDEX jobs_due_by_queue ON jobs (queue, scheduled_at)
    WHERE state IN ('scheduled', 'retryable');
CREATE INDEX jobs_due ON jobs (scheduled_at) WHERE state IN ('scheduled', 'retryable');
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_results ON jobs (result_expires_at) WHERE result IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (task, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_queue_state ON jobs (queue, state);

-- One row per (dependency, dependent) still to fire, with the dependent's failure policy
-- ('cancel' or 'continue'). A row is deleted as its dependency ends, in the same transaction,
-- so it fires once: the dependent is released when none of its rows is left.
CREATE TABLE dependencies (
    depends_on TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    on_failure TEXT NOT NULL CHECK (on_failure IN ('cancel', 'continue')),
    PRIMARY KEY (depends_on, job_id)
) WITHOUT ROWID;
CREATE INDEX dependencies_waiting ON dependencies (job_id);
