-- The jobs that run after a job (chains' links, whose schedule names their upstream job): found by that job's id.
CREATE INDEX jobs_after ON jobs ((schedule->>'job_id')) WHERE kind = 'after';
