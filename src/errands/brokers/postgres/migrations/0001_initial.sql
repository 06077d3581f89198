-- 0001_initial: jobs, queues and workers, and the one function the writes notify through.
-- Applied with search_path set to the URL's schema, so every name below lands in it; several
-- apps share one database with a schema each. Instants are timestamptz (stored in UTC) and
-- compared against the server's clock (or a test's injected one, passed in by the broker).

CREATE TABLE jobs (
    id                text COLLATE "C" PRIMARY KEY,  -- producer-made, time-ordered (UUIDv7 layout);
                                                     -- "C": ordered by bytes, as Python orders str
    task              text NOT NULL,
    queue             text NOT NULL,
    state             text NOT NULL CHECK (state IN (
                          'scheduled', 'available', 'running', 'retryable',
                          'completed', 'failed', 'cancelled')),
    payload           bytea NOT NULL,              -- the envelope, never decoded by the broker
    priority          integer NOT NULL DEFAULT 0,
    attempt           integer NOT NULL DEFAULT 0,
    failures          integer NOT NULL DEFAULT 0,
    crashes           integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL,
    max_crashes       integer NOT NULL,
    enqueued_at       timestamptz NOT NULL,
    scheduled_at      timestamptz NOT NULL,        -- when it is (or was) due; orders claims
    started_at        timestamptz,
    finished_at       timestamptz,
    lease_token       text,                        -- set only while running: the fence
    lease_expires_at  timestamptz,
    worker_id         text,
    result            bytea,
    result_ttl        interval NOT NULL,
    result_expires_at timestamptz,
    idempotency_key   text,
    fail_reason       text,
    cancel_reason     text,
    cancel_requested  boolean NOT NULL DEFAULT false,
    progress          jsonb,                       -- {"fraction": .., "message": ..}
    errors            jsonb NOT NULL DEFAULT '[]'  -- one object per failed attempt (values.py)
) WITH (
    -- Every job is updated several times (claim, extend, finish): room left on each page keeps
    -- the new version of a row on the row's own page, so an update dirties one heap page.
    fillfactor = 70,
    -- A queue table is all churn: vacuum after 2 % of it changed, not PostgreSQL's 20 %, so
    -- dead versions of claimed and finished jobs never pile up in the claim indexes.
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02
);

-- Claims walk this partial index in claim order, one queue at a time (a LATERAL join per
-- queue), so a claim reads only the rows it takes however many jobs are stored.
CREATE INDEX jobs_claimable ON jobs (queue, priority DESC, scheduled_at, id)
    WHERE state = 'available';

-- Promotion (by claims and the promoter) and wait_ready's next due time walk jobs_due.
CREATE INDEX jobs_due ON jobs (scheduled_at, id) WHERE state IN ('scheduled', 'retryable');

-- The rescuer looks only at running jobs, soonest expiry first.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';

-- Pruning: terminal jobs by age, and results by expiry.
CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_results ON jobs (result_expires_at) WHERE result IS NOT NULL;

-- Keys are unique per task, enforced here (never by a check before the insert); a finished
-- job whose result expired gives its key up (enqueue sets it to NULL) and stays stored.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (task, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- counts() reads this index instead of the table; list_jobs filters by queue with it.
CREATE INDEX jobs_queue_state ON jobs (queue, state);

-- Every queue ever enqueued to or paused, so counts() lists empty ones too.
CREATE TABLE queues (
    name   text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);

-- One heartbeat per worker, replaced by each extend.
CREATE TABLE workers (
    id          text PRIMARY KEY,
    hostname    text NOT NULL,
    pid         integer NOT NULL,
    queues      text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at  timestamptz NOT NULL,
    running     integer NOT NULL,
    seen_at     timestamptz NOT NULL
);
CREATE INDEX workers_seen ON workers (seen_at);

-- A wake-up for the waiters of other processes, sent when the calling transaction commits.
-- Nothing is sent for an empty payload (nobody to wake); one too long for NOTIFY (8000 bytes)
-- becomes '*', which wakes every waiter on the channel to re-read.
CREATE FUNCTION notice(channel text, payload text) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_notify(channel, CASE WHEN octet_length(payload) <= 7000 THEN payload ELSE '*' END)
    WHERE payload IS NOT NULL AND payload <> ''
$$;
