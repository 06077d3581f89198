-- 0006_job_search: list_jobs finds a workflow's steps and the holders of an idempotency key
-- from an index, not a scan. Applied like 0001, in the URL's schema.

-- The workflow a job is a step of (JobSpec.workflow_id), in a column of its own.
ALTER TABLE jobs ADD COLUMN workflow_id text COLLATE "C";

-- Jobs stored before this column: their envelope (JSON) names the workflow, written by
-- workflow/plan.py as "workflow":{"id":"<id>",...}. A pattern on the escaped bytes rather than
-- a cast to jsonb, which would fail the migration on a payload another program wrote; one
-- that does not match keeps NULL.
UPDATE jobs
SET workflow_id = substring(encode(payload, 'escape') FROM '"workflow":\{"id":"([^"\\]+)"')
WHERE position('"workflow":' IN encode(payload, 'escape')) > 0;

-- A workflow's steps in id order, for newest-first pages; jobs outside workflows stay out.
CREATE INDEX jobs_workflow ON jobs (workflow_id, id) WHERE workflow_id IS NOT NULL;

-- The key first, then the task: the unique index still keeps a key to one job per task (the
-- enqueue's ON CONFLICT names no columns, so their order is free), and now also serves a
-- search by the key alone, with no second index to write.
DROP INDEX jobs_idempotency;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key, task)
    WHERE idempotency_key IS NOT NULL;
