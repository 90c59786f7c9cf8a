-- Fields of the NEXUS surface: integer numbers (the stream sequence of a job's JobCreated, of an execution's
-- ExecutionRequested: stable, never reused), tasks, retry policies, tags and the rest of the job description.
ALTER TABLE jobs
    ADD COLUMN number      bigint,
    ADD COLUMN kind        text    NOT NULL DEFAULT 'cron',
    ADD COLUMN task        jsonb,
    ADD COLUMN retry       jsonb   NOT NULL DEFAULT '{}',
    ADD COLUMN priority    integer NOT NULL DEFAULT 5,
    ADD COLUMN description text,
    ADD COLUMN tags        text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN metadata    jsonb   NOT NULL DEFAULT '{}',
    ADD COLUMN created_by  text;
CREATE UNIQUE INDEX jobs_by_number ON jobs (number);
CREATE INDEX jobs_by_account_kind ON jobs (account_id, kind, created_at DESC, id);
CREATE INDEX jobs_by_tags ON jobs USING gin (tags);

ALTER TABLE executions
    ADD COLUMN number    bigint,
    ADD COLUMN manual    boolean NOT NULL DEFAULT false,
    ADD COLUMN result    jsonb,
    ADD COLUMN traceback text;
CREATE UNIQUE INDEX executions_by_number ON executions (number);
-- Stats overview counts the last 24 hours of executions.
CREATE INDEX executions_by_account_time ON executions (account_id, created_at);
CREATE INDEX executions_by_time ON executions (created_at);
