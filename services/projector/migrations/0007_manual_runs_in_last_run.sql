-- A run on demand is the job's last run too, without touching its schedule: job_runs keeps apart the nominal time
-- of the last scheduled occurrence, which alone orders the schedule's advance (next_run_at, job_version).
ALTER TABLE job_runs ADD COLUMN last_scheduled_at timestamptz;
UPDATE job_runs SET last_scheduled_at = last_run_at;
