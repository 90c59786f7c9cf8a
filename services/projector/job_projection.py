"""Applies JOBS events to the jobs and webhooks tables."""

from __future__ import annotations

import msgspec

from services.projector.batched_writes import Step, Write, apply_steps
from shared.contracts.jobs import JobCreated, JobDeleted, JobEvent
from shared.contracts.schedules import kind_of
from shared.db.pool import DbConnection

_UPSERT_JOB = """
INSERT INTO jobs (
    id, account_id, name, type, schedule, timezone, enabled, version, next_run_at, created_at, updated_at,
    number, kind, task, retry, priority, description, tags, metadata, created_by, timeout_seconds, misfire,
    start_at, end_at, jitter_seconds, overlap
)
VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,
    $25, $26
)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, type = EXCLUDED.type, schedule = EXCLUDED.schedule, timezone = EXCLUDED.timezone,
    enabled = EXCLUDED.enabled, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
    next_run_at = EXCLUDED.next_run_at, kind = EXCLUDED.kind, task = EXCLUDED.task, retry = EXCLUDED.retry,
    priority = EXCLUDED.priority, description = EXCLUDED.description, tags = EXCLUDED.tags,
    metadata = EXCLUDED.metadata, created_by = EXCLUDED.created_by, timeout_seconds = EXCLUDED.timeout_seconds,
    misfire = EXCLUDED.misfire, start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at,
    jitter_seconds = EXCLUDED.jitter_seconds, overlap = EXCLUDED.overlap
WHERE jobs.version < EXCLUDED.version
"""

_UPSERT_WEBHOOK = """
INSERT INTO webhooks (
    id, job_id, account_id, url, method, headers, query_params, body_template, content_type, created_at, updated_at,
    enabled, disabled_reason
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (id) DO UPDATE SET
    url = EXCLUDED.url, method = EXCLUDED.method, headers = EXCLUDED.headers, query_params = EXCLUDED.query_params,
    body_template = EXCLUDED.body_template, content_type = EXCLUDED.content_type, updated_at = EXCLUDED.updated_at,
    enabled = EXCLUDED.enabled, disabled_reason = EXCLUDED.disabled_reason
"""


_DELETE_OTHER_WEBHOOKS = "DELETE FROM webhooks WHERE job_id = $1 AND NOT (id = ANY($2::uuid[]))"

_DELETE_JOB = (
    "DELETE FROM webhooks WHERE job_id = $1",
    "DELETE FROM jobs WHERE id = $1",
    "DELETE FROM job_runs WHERE job_id = $1",
)


def job_step(event: JobEvent, sequence: int) -> Step:
    """The writes that make the rows of one job match the state its event carries.

    A job's number is the stream sequence of its JobCreated: set on insert, never changed.
    """
    job = event.job
    if isinstance(event, JobDeleted):
        return Step(job.id, 0, tuple(Write(sql, (job.id,)) for sql in _DELETE_JOB))
    upsert = (
        job.id,
        job.account_id,
        job.name,
        job.type,
        msgspec.to_builtins(job.schedule),
        job.timezone,
        job.enabled,
        event.version,
        event.next_run_at,
        job.created_at,
        job.updated_at,
        sequence if isinstance(event, JobCreated) else None,
        kind_of(job.schedule),
        msgspec.to_builtins(job.task) if job.task is not None else None,
        msgspec.to_builtins(job.retry),
        job.priority,
        job.description,
        list(job.tags),
        job.metadata,
        job.created_by,
        job.timeout_seconds,
        msgspec.to_builtins(job.misfire),
        job.start_at,
        job.end_at,
        job.jitter_seconds,
        job.overlap,
    )
    writes = [Write(_UPSERT_JOB, upsert), Write(_DELETE_OTHER_WEBHOOKS, (job.id, [w.id for w in job.webhooks]))]
    writes.extend(
        Write(
            _UPSERT_WEBHOOK,
            (
                w.id,
                job.id,
                job.account_id,
                w.url,
                w.method,
                w.headers,
                w.query_params,
                w.body_template,
                w.content_type,
                w.created_at,
                w.updated_at,
                w.enabled,
                w.disabled_reason,
            ),
        )
        for w in job.webhooks
    )
    return Step(job.id, 0, tuple(writes))


async def apply_job_event(conn: DbConnection, event: JobEvent, sequence: int) -> None:
    """Apply one job event on its own."""
    await apply_steps(conn, [job_step(event, sequence)])
