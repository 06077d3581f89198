-- 0007_job_search: list_jobs finds a workflow's steps and the holders of an idempotency key
-- from an index, not a scan.

-- The workflow a job is a step of (JobSpec.workflow_id), in a column of its own.
ALTER TABLE jobs ADD COLUMN workflow_id TEXT;

-- Jobs stored before this column: their envelope (JSON text) names the workflow. The instr
-- test skips, without parsing, every payload that has none; json_valid leaves NULL a payload
-- another program wrote, which would otherwise fail the migration.
UPDATE jobs SET workflow_id = CASE WHEN json_valid(CAST(payload AS TEXT))
    THEN json_extract(CAST(payload AS TEXT), '$.workflow.id') END
WHERE instr(CAST(payload AS TEXT), '"workflow":') > 0;

-- A workflow's steps in id order, for newest-first pages; jobs outside workflows stay out.
CREATE INDEX jobs_workflow ON jobs (workflow_id, id) WHERE workflow_id IS NOT NULL;

-- The key first, then the task: the unique index still keeps a key to one job per task, and
-- now also serves a search by the key alone (the dashboard's), with no second index to write.
DROP INDEX jobs_idempotency;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key, task)
    WHERE idempotency_key IS NOT NULL;
