"""Webhooks as the read model holds them, for every surface."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

_COLUMNS = (
    "id, job_id, account_id, url, method, headers, query_params, body_template, content_type, created_at, updated_at,"
    " enabled, disabled_reason"
)


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    id: UUID
    job_id: UUID
    account_id: UUID
    url: str
    method: str
    headers: dict[str, str]
    query_params: dict[str, str] | None
    body_template: str | None
    content_type: str
    created_at: datetime
    updated_at: datetime
    enabled: bool
    disabled_reason: str | None


async def webhook_by_id(pool: asyncpg.Pool, webhook_id: UUID) -> WebhookRecord | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM webhooks WHERE id = $1", webhook_id)
    return None if row is None else WebhookRecord(**dict(row))


async def job_webhooks(pool: asyncpg.Pool, job_id: UUID) -> list[WebhookRecord]:
    """A job's webhooks, oldest first."""
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM webhooks WHERE job_id = $1 ORDER BY created_at, id", job_id)
    return [WebhookRecord(**dict(r)) for r in rows]
