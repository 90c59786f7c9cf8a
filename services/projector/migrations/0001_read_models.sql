-- Read models for jobs, webhooks and executions, plus the projector's stream positions.
CREATE TABLE jobs (
    id           uuid PRIMARY KEY,
    account_id   uuid        NOT NULL,
    name         text        NOT NULL,
    type         integer     NOT NULL,
    schedule     jsonb       NOT NULL,
    timezone     text        NOT NULL,
    enabled      boolean     NOT NULL,
    version      bigint      NOT NULL,
    next_run_at  timestamptz,  -- as computed when the job last changed; job_runs may know a later one
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX jobs_by_account ON jobs (account_id, created_at DESC, id);
CREATE INDEX jobs_by_account_enabled ON jobs (account_id, enabled, created_at DESC, id);

-- Written only from the executions stream, so it is right whichever stream the projector applies first.
CREATE TABLE job_runs (
    job_id       uuid PRIMARY KEY,
    last_run_at  timestamptz NOT NULL,
    next_run_at  timestamptz,
    job_version  bigint      NOT NULL
);

CREATE TABLE webhooks (
    id            uuid PRIMARY KEY,
    job_id        uuid        NOT NULL,
    account_id    uuid        NOT NULL,
    url           text        NOT NULL,
    method        text        NOT NULL,
    headers       jsonb       NOT NULL,
    query_params  jsonb,
    body_template text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX webhooks_by_job ON webhooks (job_id, created_at, id);

CREATE TABLE executions (
    id             uuid PRIMARY KEY,
    occurrence_id  text        NOT NULL,
    job_id         uuid        NOT NULL,
    account_id     uuid        NOT NULL,
    webhook_id     uuid,
    nominal_time   timestamptz NOT NULL,
    status         text        NOT NULL,
    attempt        integer     NOT NULL,
    worker_id      text,
    started_at     timestamptz,
    finished_at    timestamptz,
    duration_ms    integer,
    response_code  integer,
    response_body  text,
    error          text,
    created_at     timestamptz NOT NULL,
    UNIQUE (occurrence_id, webhook_id, attempt)
);
CREATE INDEX executions_by_job ON executions (job_id, created_at DESC, id DESC);
CREATE INDEX executions_by_job_status ON executions (job_id, status, created_at DESC, id DESC);

CREATE TABLE projector_positions (
    stream   text PRIMARY KEY,
    position bigint NOT NULL
);
