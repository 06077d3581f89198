-- 0005_limits: rate and concurrency limits, enforced by claims (docs/limits.md). Applied like
-- 0001, in the URL's schema. A job keeps its limits as JSON text ([[key, period_us, burst,
-- concurrency], ...]) and its task limit's key in a column of its own, so running jobs are
-- counted per key from an index.

ALTER TABLE jobs ADD COLUMN limit_key text COLLATE "C", ADD COLUMN limits text;

-- The claim statement takes no limited job, and claims nothing while one is available in its
-- queues (the limited claim of postgres/limits.py then serves them all, in order): one probe
-- of this index, empty when no limits are used.
CREATE INDEX jobs_limited ON jobs (queue) WHERE state = 'available' AND limits IS NOT NULL;

-- Running jobs per limit key, for the concurrency caps (jobs without limits stay out of it, so
-- their claims and finishes do not write it).
CREATE INDEX jobs_limit_running ON jobs (limit_key)
    WHERE state = 'running' AND limit_key IS NOT NULL;

-- One row per key a claim admitted a job under: its GCRA time (µs since the epoch), when its
-- rate next admits a job (ms) and the concurrency cap of its last job, so a claim can leave
-- out, before it picks candidates, the jobs of every key that admits nothing now.
CREATE TABLE limit_keys (
    key         text COLLATE "C" PRIMARY KEY,
    tat_us      bigint NOT NULL,
    open_at     bigint NOT NULL,
    concurrency integer
);
CREATE INDEX limit_keys_open ON limit_keys (open_at);
CREATE INDEX limit_keys_tat ON limit_keys (tat_us);
