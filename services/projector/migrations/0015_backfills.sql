-- Backfills (BackfillRequested, -Progressed, -Completed, -Cancelled on the EXECUTIONS stream): one row each, with
-- how far its runner got. Rebuilt by a replay like every read model.
CREATE TABLE backfills (
    id                uuid        PRIMARY KEY,
    job_id            uuid        NOT NULL,
    account_id        uuid        NOT NULL,
    range_start       timestamptz NOT NULL,
    range_end         timestamptz NOT NULL,
    per_second        integer     NOT NULL,
    total             integer     NOT NULL,
    status            text        NOT NULL,
    through           timestamptz,
    done              integer     NOT NULL DEFAULT 0,
    requested         integer     NOT NULL DEFAULT 0,
    already_succeeded integer     NOT NULL DEFAULT 0,
    in_flight         integer     NOT NULL DEFAULT 0,
    reason            text,
    requested_by      text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    finished_at       timestamptz
);
CREATE INDEX backfills_by_job ON backfills (job_id, created_at DESC, id DESC);
CREATE INDEX backfills_running ON backfills (account_id) WHERE status = 'running';

-- The backfill an execution was requested by (null for every other): its runner recognises what it already ran.
ALTER TABLE executions ADD COLUMN IF NOT EXISTS backfill_id uuid;
