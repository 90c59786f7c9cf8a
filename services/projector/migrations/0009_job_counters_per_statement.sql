-- The job counters move once per statement, from the rows it inserted, changed or deleted (transition tables),
-- instead of once per row: the projector writes a batch of job events with one statement per kind of write, and a
-- counter row updated once per job of a 2,000-job batch was most of the cost of loading a large store (every update
-- of one row in one transaction makes the next one walk a longer chain of its versions). The figures are the row
-- trigger's: a row counts in `total`, and in `enabled` while it is enabled; a job never changes account.
DROP TRIGGER IF EXISTS jobs_counted ON jobs;
DROP FUNCTION IF EXISTS count_job();

CREATE FUNCTION count_inserted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_stats AS s (account_id, total, enabled)
    SELECT account_id, count(*), count(*) FILTER (WHERE enabled)
    FROM inserted_rows
    GROUP BY account_id
    ON CONFLICT (account_id) DO UPDATE SET total = s.total + EXCLUDED.total, enabled = s.enabled + EXCLUDED.enabled;
    RETURN NULL;
END $$;

CREATE FUNCTION count_updated_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE job_stats s SET enabled = s.enabled + d.delta
    FROM (
        SELECT n.account_id, sum(n.enabled::int - o.enabled::int) AS delta
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.enabled <> n.enabled
        GROUP BY n.account_id
    ) d
    WHERE s.account_id = d.account_id AND d.delta <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION count_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE job_stats s SET total = s.total - d.total, enabled = s.enabled - d.enabled
    FROM (
        SELECT account_id, count(*) AS total, count(*) FILTER (WHERE enabled) AS enabled
        FROM deleted_rows
        GROUP BY account_id
    ) d
    WHERE s.account_id = d.account_id;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_inserted_counted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_jobs();

CREATE TRIGGER jobs_updated_counted AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_updated_jobs();

CREATE TRIGGER jobs_deleted_counted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_jobs();
