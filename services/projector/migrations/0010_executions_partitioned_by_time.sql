-- Execution history is kept for a retention (SCHEDULER_EXECUTION_RETENTION_DAYS): the executions table is cut into
-- partitions by the occurrence's nominal time (every attempt, retry and re-drive of an occurrence in one partition),
-- and a partition older than the retention is dropped whole (services/projector/retention.py), never row by row.
-- The projector makes the partitions ahead of time; a row outside all of them (an existing row when this migration
-- runs, a clock far ahead) lands in the default partition, and is moved out when its partition is made.
ALTER TABLE executions RENAME TO executions_unpartitioned;
DROP TRIGGER executions_inserted_counted ON executions_unpartitioned;
DROP TRIGGER executions_updated_counted ON executions_unpartitioned;

CREATE TABLE executions (LIKE executions_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (nominal_time);
CREATE TABLE executions_default PARTITION OF executions DEFAULT;
INSERT INTO executions SELECT * FROM executions_unpartitioned;
DROP TABLE executions_unpartitioned;

-- A key of a partitioned table holds its partition key: an execution's id and its occurrence's nominal time go
-- together (both derive from the occurrence), so the keys are as unique as before.
ALTER TABLE executions ADD PRIMARY KEY (id, nominal_time);
ALTER TABLE executions ADD UNIQUE (occurrence_id, webhook_id, attempt, nominal_time);
-- The stream sequence of the execution's request: unique by construction.
CREATE INDEX executions_by_number ON executions (number);
CREATE INDEX executions_by_job ON executions (job_id, created_at DESC, id DESC);
CREATE INDEX executions_by_job_status ON executions (job_id, status, created_at DESC, id DESC);
CREATE INDEX executions_by_account_time ON executions (account_id, created_at);
CREATE INDEX executions_by_time ON executions (created_at);
CREATE INDEX executions_dead_letters ON executions (account_id, dead_lettered_at DESC, id DESC)
    WHERE status = 'dead_letter';
CREATE INDEX executions_dead_letters_by_job ON executions (job_id, dead_lettered_at DESC, id DESC)
    WHERE status = 'dead_letter';

CREATE TRIGGER executions_inserted_counted AFTER INSERT ON executions
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_executions();
CREATE TRIGGER executions_updated_counted AFTER UPDATE ON executions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_updated_executions();

-- The partitions made, by bound (the default partition is not listed).
CREATE TABLE execution_partitions (
    name   text PRIMARY KEY,
    lower  timestamptz NOT NULL UNIQUE,
    upper  timestamptz NOT NULL
);

-- Occurrences before the horizon are purged: their rows are gone and are not written again (a late event of one
-- is dropped), live or in a replay. No row: nothing purged yet.
CREATE TABLE execution_retention (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    horizon   timestamptz NOT NULL
);

-- What the purges removed, counted as execution_stats counts it: a purge moves its rows' counts from execution_stats
-- (which counts the rows the table holds) to here, and the APIs report the two together. A replay, which rebuilds
-- execution_stats from the events still in the stream, takes this table over from the tables it replaces.
CREATE TABLE execution_stats_purged (
    account_id       uuid   NOT NULL,
    status           text   NOT NULL,
    executions       bigint NOT NULL,
    duration_ms_sum  bigint NOT NULL,
    durations        bigint NOT NULL,
    PRIMARY KEY (account_id, status)
);
