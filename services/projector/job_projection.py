"""Applies JOBS events to the jobs and webhooks tables."""

from __future__ import annotations

from typing import Any

import msgspec

from services.projector.batched_writes import Many, Step, Write, apply_steps
from shared.contracts.jobs import JobCreated, JobDeleted, JobEvent, JobState, WebhookSpec
from shared.contracts.schedules import kind_of
from shared.db.pool import DbConnection

_JOB_CHANGES = """
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, type = EXCLUDED.type, schedule = EXCLUDED.schedule, timezone = EXCLUDED.timezone,
    enabled = EXCLUDED.enabled, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
    next_run_at = EXCLUDED.next_run_at, kind = EXCLUDED.kind, task = EXCLUDED.task, retry = EXCLUDED.retry,
    priority = EXCLUDED.priority, description = EXCLUDED.description, tags = EXCLUDED.tags,
    metadata = EXCLUDED.metadata, created_by = EXCLUDED.created_by, timeout_seconds = EXCLUDED.timeout_seconds,
    misfire = EXCLUDED.misfire, start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at,
    jitter_seconds = EXCLUDED.jitter_seconds, overlap = EXCLUDED.overlap, exclusions = EXCLUDED.exclusions,
    callback_url = EXCLUDED.callback_url, failure_callback_url = EXCLUDED.failure_callback_url,
    flow_control = EXCLUDED.flow_control
WHERE jobs.version < EXCLUDED.version
"""

_UPSERT_JOB = (
    """
INSERT INTO jobs (
    id, account_id, name, type, schedule, timezone, enabled, version, next_run_at, created_at, updated_at,
    number, kind, task, retry, priority, description, tags, metadata, created_by, timeout_seconds, misfire,
    start_at, end_at, jitter_seconds, overlap, exclusions, callback_url, failure_callback_url,
    flow_control
)
VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,
    $25, $26, $27, $28, $29, $30
)
"""
    + _JOB_CHANGES
)

# The same upsert for many jobs at once (a batch holds one step per job, so no row is touched twice). Parameters sent
# as JSON text: schedule, task, retry, tags (an array per row, which unnest would flatten), metadata, misfire.
_UPSERT_JOBS = Many(
    """
INSERT INTO jobs (
    id, account_id, name, type, schedule, timezone, enabled, version, next_run_at, created_at, updated_at,
    number, kind, task, retry, priority, description, tags, metadata, created_by, timeout_seconds, misfire,
    start_at, end_at, jitter_seconds, overlap, exclusions, callback_url, failure_callback_url,
    flow_control
)
SELECT u.id, u.account_id, u.name, u.type, u.schedule::jsonb, u.timezone, u.enabled, u.version, u.next_run_at,
    u.created_at, u.updated_at, u.number, u.kind, u.task::jsonb, u.retry::jsonb, u.priority, u.description,
    ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb)), u.metadata::jsonb, u.created_by, u.timeout_seconds,
    u.misfire::jsonb, u.start_at, u.end_at, u.jitter_seconds, u.overlap, u.exclusions::jsonb,
    u.callback_url, u.failure_callback_url, u.flow_control::jsonb
FROM unnest(
    $1::uuid[], $2::uuid[], $3::text[], $4::integer[], $5::text[], $6::text[], $7::boolean[], $8::bigint[],
    $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::bigint[], $13::text[], $14::text[], $15::text[],
    $16::integer[], $17::text[], $18::text[], $19::text[], $20::text[], $21::double precision[], $22::text[],
    $23::timestamptz[], $24::timestamptz[], $25::double precision[], $26::text[], $27::text[],
    $28::text[], $29::text[], $30::text[]
) AS u(
    id, account_id, name, type, schedule, timezone, enabled, version, next_run_at, created_at, updated_at,
    number, kind, task, retry, priority, description, tags, metadata, created_by, timeout_seconds, misfire,
    start_at, end_at, jitter_seconds, overlap, exclusions, callback_url, failure_callback_url,
    flow_control
)
"""
    + _JOB_CHANGES,
    json=frozenset({4, 13, 14, 17, 18, 21, 26, 29}),
)

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


_UPSERT_WEBHOOKS = Many(
    """
INSERT INTO webhooks (
    id, job_id, account_id, url, method, headers, query_params, body_template, content_type, created_at, updated_at,
    enabled, disabled_reason
)
SELECT u.id, u.job_id, u.account_id, u.url, u.method, u.headers::jsonb, u.query_params::jsonb, u.body_template,
    u.content_type, u.created_at, u.updated_at, u.enabled, u.disabled_reason
FROM unnest(
    $1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
    $10::timestamptz[], $11::timestamptz[], $12::boolean[], $13::text[]
) AS u(
    id, job_id, account_id, url, method, headers, query_params, body_template, content_type, created_at, updated_at,
    enabled, disabled_reason
)
ON CONFLICT (id) DO UPDATE SET
    url = EXCLUDED.url, method = EXCLUDED.method, headers = EXCLUDED.headers, query_params = EXCLUDED.query_params,
    body_template = EXCLUDED.body_template, content_type = EXCLUDED.content_type, updated_at = EXCLUDED.updated_at,
    enabled = EXCLUDED.enabled, disabled_reason = EXCLUDED.disabled_reason
""",
    json=frozenset({5, 6}),
)

_DELETE_OTHER_WEBHOOKS = "DELETE FROM webhooks WHERE job_id = $1 AND NOT (id = ANY($2::uuid[]))"

_DELETE_JOB = (
    "DELETE FROM webhooks WHERE job_id = $1",
    "DELETE FROM jobs WHERE id = $1",
    "DELETE FROM job_runs WHERE job_id = $1",
)


def job_step(event: JobEvent, sequence: int) -> Step:
    """The writes that make the rows of one job match the state its event carries."""
    job = event.job
    if isinstance(event, JobDeleted):
        return Step(job.id, 0, tuple(Write(sql, (job.id,)) for sql in _DELETE_JOB))
    writes = [Write(_UPSERT_JOB, tuple(job_row(event, sequence).values()), _UPSERT_JOBS)]
    if not isinstance(event, JobCreated):  # a job's first event: it has no webhooks yet to remove
        writes.append(Write(_DELETE_OTHER_WEBHOOKS, (job.id, [w.id for w in job.webhooks])))
    writes.extend(Write(_UPSERT_WEBHOOK, tuple(webhook_row(job, w).values()), _UPSERT_WEBHOOKS) for w in job.webhooks)
    return Step(job.id, 0, tuple(writes))


def job_row(event: JobEvent, sequence: int) -> dict[str, Any]:
    """The jobs row of the state an event carries, by column in _UPSERT_JOB's order.

    A job's number is the stream sequence of its JobCreated: set on insert, never changed.
    """
    job = event.job
    return {
        "id": job.id,
        "account_id": job.account_id,
        "name": job.name,
        "type": job.type,
        "schedule": msgspec.to_builtins(job.schedule),
        "timezone": job.timezone,
        "enabled": job.enabled,
        "version": event.version,
        "next_run_at": event.next_run_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "number": sequence if isinstance(event, JobCreated) else None,
        "kind": kind_of(job.schedule),
        "task": msgspec.to_builtins(job.task) if job.task is not None else None,
        "retry": msgspec.to_builtins(job.retry),
        "priority": job.priority,
        "description": job.description,
        "tags": list(job.tags),
        "metadata": job.metadata,
        "created_by": job.created_by,
        "timeout_seconds": job.timeout_seconds,
        "misfire": msgspec.to_builtins(job.misfire),
        "start_at": job.start_at,
        "end_at": job.end_at,
        "jitter_seconds": job.jitter_seconds,
        "overlap": job.overlap,
        "exclusions": msgspec.to_builtins(job.exclusions) if job.exclusions is not None else None,
        "callback_url": job.callback_url,
        "failure_callback_url": job.failure_callback_url,
        "flow_control": msgspec.to_builtins(job.flow_control) if job.flow_control is not None else None,
    }


def webhook_row(job: JobState, webhook: WebhookSpec) -> dict[str, Any]:
    """The webhooks row of one of a job's webhooks, by column in _UPSERT_WEBHOOK's order."""
    return {
        "id": webhook.id,
        "job_id": job.id,
        "account_id": job.account_id,
        "url": webhook.url,
        "method": webhook.method,
        "headers": webhook.headers,
        "query_params": webhook.query_params,
        "body_template": webhook.body_template,
        "content_type": webhook.content_type,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
        "enabled": webhook.enabled,
        "disabled_reason": webhook.disabled_reason,
    }


async def apply_job_event(conn: DbConnection, event: JobEvent, sequence: int) -> None:
    """Apply one job event on its own."""
    await apply_steps(conn, [job_step(event, sequence)])
