-- 0004_workflows: the `pending` state of a job that waits for others, the dependencies it
-- waits for, and settle(), which applies a job's ending to them (brokers/dependencies.py
-- states the rule). Applied like 0001, in the URL's schema.

ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;

ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (state IN (
    'pending', 'scheduled', 'available', 'running', 'retryable',
    'completed', 'failed', 'cancelled')) NOT VALID;

ALTER TABLE jobs VALIDATE CONSTRAINT jobs_state_check;

-- One row per (dependency, dependent) still to fire, with the dependent's failure policy. A
-- row is deleted as its dependency ends, in the same transaction, so it fires once.
CREATE TABLE dependencies (
    depends_on text COLLATE "C" NOT NULL,
    job_id     text COLLATE "C" NOT NULL,
    on_failure text NOT NULL CHECK (on_failure IN ('cancel', 'continue')),
    PRIMARY KEY (depends_on, job_id)
);
CREATE INDEX dependencies_waiting ON dependencies (job_id);

-- Apply the ending of the jobs `ended` (completed[i]: whether ended[i] completed) to their
-- pending dependents, at instant `at`, then the ending of each dependent this cancels; notify
-- `done` of those and `ready` of the queues of the jobs released. Returns how many it
-- cancelled.
--
-- Exactly once under concurrency: a dependent's row is locked before its remaining
-- dependencies are counted, and each statement of a VOLATILE function reads a fresh snapshot.
-- Two transactions ending the last two dependencies of one job queue up on its row; the
-- second counts after the first committed, so one of them, and only one, sees none left.
CREATE FUNCTION settle(ended text[], completed boolean[], at timestamptz, ready text, done text)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    todo text[] := ended;
    ok boolean[] := completed;
    next text[];
    edge record;
    queue_name text;
    cancelled text[] := '{}';
    woken text[] := '{}';
BEGIN
    WHILE cardinality(todo) > 0 LOOP
        next := '{}';
        FOR edge IN
            WITH fired AS (
                DELETE FROM dependencies AS d
                USING unnest(todo, ok) AS e (id, ok)
                WHERE d.depends_on = e.id
                RETURNING d.job_id, d.on_failure, e.ok
            )
            -- A failure cancels before a completion in the same batch could release.
            SELECT job_id, bool_or(NOT fired.ok AND on_failure = 'cancel') AS doomed
            FROM fired GROUP BY job_id ORDER BY job_id  -- one lock order for every caller
        LOOP
            PERFORM 1 FROM jobs WHERE id = edge.job_id AND state = 'pending' FOR UPDATE;
            IF NOT FOUND THEN
                CONTINUE;
            END IF;
            IF edge.doomed THEN
                UPDATE jobs SET
                    state = 'cancelled', cancel_reason = 'parent_failed', finished_at = at,
                    result_expires_at = at + result_ttl
                WHERE id = edge.job_id;
                cancelled := cancelled || edge.job_id;
                next := next || edge.job_id;
            ELSE
                UPDATE jobs SET state = CASE WHEN scheduled_at > at THEN 'scheduled'
                                             ELSE 'available' END
                WHERE id = edge.job_id
                  AND NOT EXISTS (SELECT 1 FROM dependencies WHERE job_id = edge.job_id)
                RETURNING queue INTO queue_name;
                IF FOUND THEN
                    woken := woken || queue_name;
                END IF;
            END IF;
        END LOOP;
        todo := next;
        ok := array_fill(false, ARRAY[cardinality(next)]);
    END LOOP;
    PERFORM notice(done, array_to_string(cancelled, ' '));
    PERFORM notice(ready, (SELECT string_agg(DISTINCT w, E'\n') FROM unnest(woken) AS w));
    RETURN cardinality(cancelled);
END
$$;
