-- 0001_initial: jobs, queues and workers.
-- Instants are INTEGER milliseconds since the epoch (UTC) and durations INTEGER milliseconds:
-- they compare as numbers and always against a `now` the broker passes in, never SQLite's clock.

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,       -- producer-made, time-ordered (UUIDv7 layout)
    task              TEXT NOT NULL,
    queue             TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN (
                          'scheduled', 'available', 'running', 'retryable',
                          'completed', 'failed', 'cancelled')),
    payload           BLOB NOT NULL,          -- the envelope, never decoded by the broker
    priority          INTEGER NOT NULL DEFAULT 0,
    attempt           INTEGER NOT NULL DEFAULT 0,
    failures          INTEGER NOT NULL DEFAULT 0,
    crashes           INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    max_crashes       INTEGER NOT NULL,
    enqueued_at       INTEGER NOT NULL,
    scheduled_at      INTEGER NOT NULL,       -- when it is (or was) due; orders claims
    started_at        INTEGER,
    finished_at       INTEGER,
    lease_token       TEXT,                   -- set only while running: the fence
    lease_expires_at  INTEGER,
    worker_id         TEXT,
    result            BLOB,
    result_ttl_ms     INTEGER NOT NULL,
    result_expires_at INTEGER,
    idempotency_key   TEXT,
    fail_reason       TEXT,
    cancel_reason     TEXT,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    progress          TEXT,                   -- JSON {"fraction": .., "message": ..}
    errors            TEXT NOT NULL DEFAULT '[]'  -- JSON list, one object per failed attempt
);

-- Claims walk this partial index in claim order, one queue at a time, so a claim reads only
-- the rows it takes however many jobs are stored.
CREATE INDEX jobs_claimable ON jobs (queue, priority DESC, scheduled_at, id)
    WHERE state = 'available';

-- Promotion (by claims and the promoter) walks jobs_due; wait_ready asks for the next due
-- job of its queues with jobs_due_by_queue.
CREATE INDEX jobs_due_by_queue ON jobs (queue, scheduled_at)
    WHERE state IN ('scheduled', 'retryable');
CREATE INDEX jobs_due ON jobs (scheduled_at) WHERE state IN ('scheduled', 'retryable');

-- The rescuer looks only at running jobs, soonest expiry first.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';

-- Pruning: terminal jobs by age, and results by expiry.
CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_results ON jobs (result_expires_at) WHERE result IS NOT NULL;

-- Not UNIQUE: a key is free again once its job's result has expired, while that job stays.
CREATE INDEX jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- counts() reads this index alone instead of the table; list_jobs filters by queue with it.
CREATE INDEX jobs_queue_state ON jobs (queue, state);

-- Every queue ever enqueued to or paused, so counts() lists empty ones too.
CREATE TABLE queues (
    name   TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- One heartbeat per worker, replaced by each extend.
CREATE TABLE workers (
    id          TEXT PRIMARY KEY,
    hostname    TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    queues      TEXT NOT NULL,                -- JSON list of queue names
    concurrency INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    running     INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
CREATE INDEX workers_seen ON workers (seen_at);
