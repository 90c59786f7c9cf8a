"""`scheduler dlq`: list and re-drive dead letters from a terminal, against NATS_URL and DATABASE_URL.

The same code as the api's /api/dead-letters, acting on every account (an operator's tool, like `replay`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import click

from services.api.core.dead_letters import Redriver, RedriveReport, Selection, list_dead_letters
from services.api.core.execution_queries import ExecutionRecord
from shared.bus.connection import connect, disconnect
from shared.bus.executions import publish_requested
from shared.bus.job_store import NatsJobEventStore
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.settings import Settings

Scope = frozenset[UUID] | None  # the accounts acted on; None: every account


def selected(
    account: UUID | None, job: UUID | None, since: datetime | None, executions: tuple[UUID, ...] = ()
) -> tuple[Scope, Selection]:
    """The accounts and dead letters the options name; a time without an offset is UTC."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    scope = None if account is None else frozenset({account})
    return scope, Selection(execution_ids=executions, job_id=job, since=since)


async def listed(
    settings: Settings, scope: Scope, selection: Selection, limit: int
) -> tuple[list[ExecutionRecord], int]:
    pool = await create_pool(settings.database_url)
    try:
        return await list_dead_letters(pool, scope, selection, skip=0, limit=limit)
    finally:
        await pool.close()


async def redriven(settings: Settings, scope: Scope, selection: Selection) -> RedriveReport:
    names = Names(settings.namespace)
    pool = await create_pool(settings.database_url)
    nc = await connect(settings.nats_url, "dlq")
    try:
        js = nc.jetstream()
        store = NatsJobEventStore(js, names)
        redriver = Redriver(pool, js, names, store, lambda request: publish_requested(js, names, request))
        return await redriver.redrive(scope, selection)
    finally:
        await disconnect(nc)
        await pool.close()


def print_listing(items: list[ExecutionRecord], total: int) -> None:
    click.echo(f"{total} dead letter(s){'' if total <= len(items) else f', showing {len(items)}'}")
    for e in items:
        when = e.dead_lettered_at.isoformat() if e.dead_lettered_at else "-"
        click.echo(f"{e.id}  job {e.job_id}  attempt {e.attempt}  {when}  {e.error or ''}")


def print_report(report: RedriveReport) -> None:
    for old, new in report.redriven:
        click.echo(f"re-driven {old} -> {new}")
    for old, reason in report.skipped:
        click.echo(f"skipped   {old}: {reason}")
    click.echo(f"{len(report.redriven)} re-driven, {len(report.skipped)} skipped, {report.remaining} left")
