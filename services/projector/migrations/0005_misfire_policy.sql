-- Per-job misfire policy (what happens to occurrences missed while no ticker looked), and its missed records.
ALTER TABLE jobs ADD COLUMN misfire jsonb NOT NULL DEFAULT '{}'::jsonb;
