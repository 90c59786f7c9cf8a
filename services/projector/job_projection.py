"""Applies JOBS events to the jobs and webhooks tables."""

from __future__ import annotations

import msgspec

from shared.contracts.jobs import JobDeleted, JobEvent
from shared.db.pool import DbConnection

_UPSERT_JOB = """
INSERT INTO jobs (id, account_id, name, type, schedule, timezone, enabled, version, next_run_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, type = EXCLUDED.type, schedule = EXCLUDED.schedule, timezone = EXCLUDED.timezone,
    enabled = EXCLUDED.enabled, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
    next_run_at = EXCLUDED.next_run_at
WHERE jobs.version < EXCLUDED.version
"""

_UPSERT_WEBHOOK = """
INSERT INTO webhooks (id, job_id, account_id, url, method, headers, query_params, body_template, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET
    url = EXCLUDED.url, method = EXCLUDED.method, headers = EXCLUDED.headers, query_params = EXCLUDED.query_params,
    body_template = EXCLUDED.body_template, updated_at = EXCLUDED.updated_at
"""


async def apply_job_event(conn: DbConnection, event: JobEvent) -> None:
    """Make the rows of one job match the state its event carries."""
    job = event.job
    if isinstance(event, JobDeleted):
        await conn.execute("DELETE FROM webhooks WHERE job_id = $1", job.id)
        await conn.execute("DELETE FROM jobs WHERE id = $1", job.id)
        await conn.execute("DELETE FROM job_runs WHERE job_id = $1", job.id)
        return
    await conn.execute(
        _UPSERT_JOB,
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
    )
    await conn.execute(
        "DELETE FROM webhooks WHERE job_id = $1 AND NOT (id = ANY($2::uuid[]))",
        job.id,
        [w.id for w in job.webhooks],
    )
    for w in job.webhooks:
        await conn.execute(
            _UPSERT_WEBHOOK,
            w.id,
            job.id,
            job.account_id,
            w.url,
            w.method,
            w.headers,
            w.query_params,
            w.body_template,
            w.created_at,
            w.updated_at,
        )
