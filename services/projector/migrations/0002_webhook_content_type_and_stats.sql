-- Webhooks carry their content type; per-account counters answer /metrics without scanning executions or jobs.
ALTER TABLE webhooks ADD COLUMN content_type text NOT NULL DEFAULT 'application/json';

CREATE TABLE execution_stats (
    account_id       uuid   NOT NULL,
    status           text   NOT NULL,
    executions       bigint NOT NULL,
    duration_ms_sum  bigint NOT NULL,
    durations        bigint NOT NULL,  -- executions of this status that have a duration
    PRIMARY KEY (account_id, status)
);

CREATE TABLE job_stats (
    account_id  uuid PRIMARY KEY,
    total       bigint NOT NULL,
    enabled     bigint NOT NULL
);

-- Counters follow the rows through triggers, so every writer (projection, replay) keeps them right.
CREATE FUNCTION count_execution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status = NEW.status AND OLD.duration_ms IS NOT DISTINCT FROM NEW.duration_ms THEN
            RETURN NULL;
        END IF;
        UPDATE execution_stats
        SET executions = executions - 1,
            duration_ms_sum = duration_ms_sum - COALESCE(OLD.duration_ms, 0),
            durations = durations - (OLD.duration_ms IS NOT NULL)::int
        WHERE account_id = OLD.account_id AND status = OLD.status;
    END IF;
    INSERT INTO execution_stats AS s (account_id, status, executions, duration_ms_sum, durations)
    VALUES (NEW.account_id, NEW.status, 1, COALESCE(NEW.duration_ms, 0), (NEW.duration_ms IS NOT NULL)::int)
    ON CONFLICT (account_id, status) DO UPDATE SET
        executions = s.executions + 1,
        duration_ms_sum = s.duration_ms_sum + EXCLUDED.duration_ms_sum,
        durations = s.durations + EXCLUDED.durations;
    RETURN NULL;
END $$;

CREATE TRIGGER executions_counted AFTER INSERT OR UPDATE ON executions
    FOR EACH ROW EXECUTE FUNCTION count_execution();

CREATE FUNCTION count_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.enabled = NEW.enabled THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE job_stats SET total = total - 1, enabled = enabled - OLD.enabled::int
        WHERE account_id = OLD.account_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO job_stats AS s (account_id, total, enabled) VALUES (NEW.account_id, 1, NEW.enabled::int)
        ON CONFLICT (account_id) DO UPDATE SET total = s.total + 1, enabled = s.enabled + EXCLUDED.enabled;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_counted AFTER INSERT OR UPDATE OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION count_job();

INSERT INTO execution_stats (account_id, status, executions, duration_ms_sum, durations)
SELECT account_id, status, count(*), COALESCE(sum(duration_ms), 0), count(duration_ms)
FROM executions GROUP BY account_id, status;

INSERT INTO job_stats (account_id, total, enabled)
SELECT account_id, count(*), count(*) FILTER (WHERE enabled) FROM jobs GROUP BY account_id;
