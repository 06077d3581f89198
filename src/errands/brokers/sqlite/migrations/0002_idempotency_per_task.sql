-- 0002_idempotency_per_task: idempotency keys are scoped to the task and unique, enforced by
-- the database instead of a check before the insert.

-- Keys were global before: keep each (task, key) on its newest job, so the index can be built.
UPDATE jobs SET idempotency_key = NULL
WHERE idempotency_key IS NOT NULL
  AND id NOT IN (
      SELECT max(id) FROM jobs WHERE idempotency_key IS NOT NULL GROUP BY task, idempotency_key
  );

DROP INDEX jobs_idempotency;

-- A finished job whose result expired gives its key up (the enqueue sets it to NULL), so the
-- index can be UNIQUE while that job stays stored.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (task, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
