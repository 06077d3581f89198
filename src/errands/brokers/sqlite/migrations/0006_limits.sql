-- 0006_limits: rate and concurrency limits, enforced by claims (docs/limits.md).
-- A job keeps its limits as JSON ([[key, period_us, burst, concurrency], ...]) and its task
-- limit's key in a column of its own, so running jobs are counted per key from an index.

ALTER TABLE jobs ADD COLUMN limit_key TEXT;
ALTER TABLE jobs ADD COLUMN limits TEXT;

-- A claim asks first whether its queues hold a limited job at all: if not, it claims as
-- before and limits cost one probe of this (empty) index.
CREATE INDEX jobs_limited ON jobs (queue) WHERE state = 'available' AND limits IS NOT NULL;

-- Running jobs per limit key, for the concurrency caps (jobs without limits stay out of it, so
-- their claims and finishes do not write it).
CREATE INDEX jobs_limit_running ON jobs (limit_key)
    WHERE state = 'running' AND limit_key IS NOT NULL;

-- One row per key a claim admitted a job under: its GCRA time (µs), when its rate next admits
-- a job (ms) and the concurrency cap of its last job, so a claim can leave out, before it picks
-- candidates, the jobs of every key that admits nothing now.
CREATE TABLE limit_keys (
    key         TEXT PRIMARY KEY,
    tat_us      INTEGER NOT NULL,
    open_at     INTEGER NOT NULL,
    concurrency INTEGER
) WITHOUT ROWID;
CREATE INDEX limit_keys_open ON limit_keys (open_at);
CREATE INDEX limit_keys_tat ON limit_keys (tat_us);
