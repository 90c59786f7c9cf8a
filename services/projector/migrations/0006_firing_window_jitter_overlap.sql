-- Per job: a window outside which occurrences do not fire, a jitter that spreads publication, an overlap policy.
ALTER TABLE jobs
    ADD COLUMN start_at timestamptz,
    ADD COLUMN end_at timestamptz,
    ADD COLUMN jitter_seconds double precision NOT NULL DEFAULT 0,
    ADD COLUMN overlap text NOT NULL DEFAULT 'allow';
