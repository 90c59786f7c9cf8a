-- Retries, dead letters and webhooks switched off by their receivers (410 Gone).
ALTER TABLE executions
    ADD COLUMN retry_at timestamptz,           -- when the next attempt of this occurrence is due, if one is
    ADD COLUMN dead_lettered_at timestamptz,
    ADD COLUMN redrive boolean NOT NULL DEFAULT false,
    ADD COLUMN timeout_seconds double precision;

-- Dead letters are listed per account or per job, newest first; only rows waiting for an operator are indexed.
CREATE INDEX executions_dead_letters ON executions (account_id, dead_lettered_at DESC, id DESC)
    WHERE status = 'dead_letter';
CREATE INDEX executions_dead_letters_by_job ON executions (job_id, dead_lettered_at DESC, id DESC)
    WHERE status = 'dead_letter';

ALTER TABLE webhooks
    ADD COLUMN enabled boolean NOT NULL DEFAULT true,
    ADD COLUMN disabled_reason text;

ALTER TABLE jobs ADD COLUMN timeout_seconds double precision;
