-- 0003_schedules: stored schedules. scheduling/ decides every slot; the broker stores each
-- schedule and fences its firings on `cursor`, so a slot runs once however many schedulers
-- race (brokers/contract.py, Broker.fire). Instants are INTEGER epoch milliseconds, as in 0001.

CREATE TABLE schedules (
    name          TEXT PRIMARY KEY,
    definition    TEXT NOT NULL,               -- JSON written and read by scheduling/ only
    paused        INTEGER NOT NULL DEFAULT 0,
    cursor        INTEGER NOT NULL,            -- every slot at or before it was run or skipped
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_slot     INTEGER,                     -- the last run: its slot, job and when it fired
    last_job_id   TEXT,
    last_fired_at INTEGER,
    skipped       TEXT NOT NULL DEFAULT '[]'   -- JSON array of skipped slots, oldest first
);
