-- 0002_schedules: the stored schedules. scheduling/ decides every slot; the broker stores each
-- schedule and fences its firings (schedules.py). Applied like 0001, in the URL's schema.

CREATE TABLE schedules (
    name          text COLLATE "C" PRIMARY KEY,  -- "C": listed in the order Python sorts str
    definition    text NOT NULL,                 -- JSON of scheduling/, never read here
    paused        boolean NOT NULL DEFAULT false,
    cursor        timestamptz NOT NULL,          -- the fence: only a firing that read it moves it
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    -- The last run: its slot, the stored id of its last job (a key's owner for a duplicate).
    last_slot     timestamptz,
    last_job_id   text COLLATE "C",
    last_fired_at timestamptz,
    -- Slots passed without a run, oldest first, at most SKIPPED_KEEP: values.skipped_json
    -- objects, so a foreign reader decodes them as the other brokers' records.
    skipped       jsonb NOT NULL DEFAULT '[]'
);
