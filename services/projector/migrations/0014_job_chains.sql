-- The jobs that run after a job (chains' links, whose schedule names their upstream job): found by that job's id.
CREATE INDEX jobs_after ON jobs ((schedule->>'job_id')) WHERE kind = 'after';
-- Each link fired, once per upstream occurrence: a second result of the same occurrence (another webhook, a re-drive)
-- later than JetStream's duplicate window must not fire it again. Rebuildable: a replay fires nothing.
CREATE TABLE chain_firings (
    job_id uuid NOT NULL,
    upstream_occurrence_id text NOT NULL,
    fired_at timestamptz NOT NULL,
    PRIMARY KEY (job_id, upstream_occurrence_id)
);
