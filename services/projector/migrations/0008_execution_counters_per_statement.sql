-- The execution counters move once per statement, from the rows it inserted or changed (transition tables), instead
-- of once per row version: the projector writes a batch with one statement per kind of write, so the counters of a
-- batch move a few times, not three times per execution. The figures are the row trigger's: a row counts under its
-- status (and its duration, if it has one); an update that changes neither moves nothing; a counter row is made for
-- every status a row takes, if only for a moment. Nothing deletes executions, so deletes are not counted (as before).
DROP TRIGGER IF EXISTS executions_counted ON executions;
DROP FUNCTION IF EXISTS count_execution();

CREATE FUNCTION count_inserted_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO execution_stats AS s (account_id, status, executions, duration_ms_sum, durations)
    SELECT account_id, status, count(*), COALESCE(sum(duration_ms), 0), count(duration_ms)
    FROM inserted_rows
    GROUP BY account_id, status
    ON CONFLICT (account_id, status) DO UPDATE SET
        executions = s.executions + EXCLUDED.executions,
        duration_ms_sum = s.duration_ms_sum + EXCLUDED.duration_ms_sum,
        durations = s.durations + EXCLUDED.durations;
    RETURN NULL;
END $$;

CREATE FUNCTION count_updated_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        SELECT o.account_id AS old_account_id, o.status AS old_status, o.duration_ms AS old_duration_ms,
            n.account_id, n.status, n.duration_ms
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.status <> n.status OR o.duration_ms IS DISTINCT FROM n.duration_ms
    ), deltas AS (
        SELECT old_account_id AS account_id, old_status AS status, -1 AS executions,
            -COALESCE(old_duration_ms, 0) AS duration_ms_sum, -(old_duration_ms IS NOT NULL)::int AS durations
        FROM moved
        UNION ALL
        SELECT account_id, status, 1, COALESCE(duration_ms, 0), (duration_ms IS NOT NULL)::int
        FROM moved
    )
    INSERT INTO execution_stats AS s (account_id, status, executions, duration_ms_sum, durations)
    SELECT account_id, status, sum(executions), sum(duration_ms_sum), sum(durations)
    FROM deltas
    GROUP BY account_id, status
    ON CONFLICT (account_id, status) DO UPDATE SET
        executions = s.executions + EXCLUDED.executions,
        duration_ms_sum = s.duration_ms_sum + EXCLUDED.duration_ms_sum,
        durations = s.durations + EXCLUDED.durations
    WHERE EXCLUDED.executions <> 0 OR EXCLUDED.duration_ms_sum <> 0 OR EXCLUDED.durations <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER executions_inserted_counted AFTER INSERT ON executions
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_executions();

CREATE TRIGGER executions_updated_counted AFTER UPDATE ON executions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_updated_executions();
