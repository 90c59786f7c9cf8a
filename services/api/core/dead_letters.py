"""Dead letters: occurrences whose last attempt failed, listed from the read model and re-driven onto the bus.

A re-drive is one more attempt of the same occurrence (attempt + 1, same `webhook-id`), built from the original
request, which is read back from the EXECUTIONS stream by its sequence (the execution's number). The webhook is
taken from the job as it is now, so a corrected URL is used; a removed or disabled webhook, or a deleted job, is
reported and skipped. The retry policy and timeout are the job's current ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.api.core.auth import Principal
from services.api.core.execution_queries import EXECUTION_COLUMNS, ExecutionRecord, execution_record
from services.api.core.stats import account_scope
from shared.bus.executions import PublishRequested
from shared.bus.job_store import JobEventStore, load_live
from shared.contracts.codec import decode_execution_event
from shared.contracts.executions import ExecutionRequested
from shared.contracts.jobs import JobState
from shared.contracts.subjects import Names

# One call re-drives at most this many; the answer says how many were left for the next call.
MAX_REDRIVE = 1000


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters: any combination narrows the set; at least one of the three must be given."""

    execution_ids: tuple[UUID, ...] = ()
    job_id: UUID | None = None
    since: datetime | None = None

    def where(self, accounts: frozenset[UUID] | None, args: list[Any]) -> str:
        conditions = ["status = 'dead_letter'", account_scope(accounts, args)]
        if self.execution_ids:
            args.append(list(self.execution_ids))
            conditions.append(f"id = ANY(${len(args)}::uuid[])")
        if self.job_id is not None:
            args.append(self.job_id)
            conditions.append(f"job_id = ${len(args)}")
        if self.since is not None:
            args.append(self.since)
            conditions.append(f"dead_lettered_at >= ${len(args)}")
        return " AND ".join(conditions)


@dataclass(slots=True)
class RedriveReport:
    redriven: list[tuple[UUID, UUID]] = field(default_factory=list)  # (dead letter, its new attempt)
    skipped: list[tuple[UUID, str]] = field(default_factory=list)
    remaining: int = 0
    last_sequence: int = 0  # of the new attempts on EXECUTIONS, to wait for before answering


async def check_access(pool: asyncpg.Pool, principal: Principal, selection: Selection) -> None:
    """ForbiddenError when the selection names a job or an execution of an account the caller may not act on (as
    every other route answers), rather than a re-drive that silently finds nothing."""
    if selection.job_id is not None:
        owner = await pool.fetchval(
            "SELECT account_id FROM jobs WHERE id = $1 UNION ALL"
            " (SELECT account_id FROM executions WHERE job_id = $1 LIMIT 1) LIMIT 1",
            selection.job_id,
        )
        if owner is not None:
            principal.check_account(owner)
    if selection.execution_ids:
        owners = await pool.fetch(
            "SELECT DISTINCT account_id FROM executions WHERE id = ANY($1::uuid[])", list(selection.execution_ids)
        )
        for row in owners:
            principal.check_account(row["account_id"])


# Why a named execution was not re-driven, when it is not a dead letter of the selection.
_NAMED = """
SELECT e.id, e.status,
    EXISTS (
        SELECT 1 FROM executions l WHERE l.occurrence_id = e.occurrence_id AND l.webhook_id IS NOT DISTINCT FROM
        e.webhook_id AND l.attempt > e.attempt AND l.redrive
    ) AS redriven
FROM executions e WHERE e.id = ANY($1::uuid[])
"""


def _why_not(status: str, redriven: bool) -> str:
    if redriven:
        return "already re-driven"
    if status == "dead_letter":
        return "not of the job or time selected"
    return f"not a dead letter (its status is {status})"


async def list_dead_letters(
    pool: asyncpg.Pool, accounts: frozenset[UUID] | None, selection: Selection, *, skip: int, limit: int
) -> tuple[list[ExecutionRecord], int]:
    """Newest first; served by the partial dead-letter indexes."""
    args: list[Any] = []
    where = selection.where(accounts, args)
    n = len(args)
    rows = await pool.fetch(
        f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE {where}"
        f" ORDER BY dead_lettered_at DESC, id DESC OFFSET ${n + 1} LIMIT ${n + 2}",
        *args,
        skip,
        limit,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM executions WHERE {where}", *args)
    return [execution_record(r) for r in rows], int(total)


class Redriver:
    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        names: Names,
        store: JobEventStore,
        publish: PublishRequested,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._js = js
        self._names = names
        self._store = store
        self._publish = publish
        self._clock = clock

    async def redrive(self, accounts: frozenset[UUID] | None, selection: Selection) -> RedriveReport:
        args: list[Any] = []
        where = selection.where(accounts, args)
        rows = await self._pool.fetch(
            f"SELECT id, number, job_id FROM executions WHERE {where} ORDER BY dead_lettered_at, id"
            f" LIMIT {MAX_REDRIVE + 1}",
            *args,
        )
        report = RedriveReport(remaining=max(len(rows) - MAX_REDRIVE, 0))
        if selection.execution_ids:
            await self._explain_named(accounts, selection.execution_ids, {row["id"] for row in rows}, report)
        jobs: dict[UUID, JobState | None] = {}
        for row in rows[:MAX_REDRIVE]:
            if row["job_id"] not in jobs:
                loaded = await load_live(self._store, row["job_id"])
                jobs[row["job_id"]] = None if loaded is None else loaded.event.job
            job = jobs[row["job_id"]]
            outcome = await self._one(row["id"], row["number"], job)
            if isinstance(outcome, str):
                report.skipped.append((row["id"], outcome))
            else:
                following, sequence = outcome
                report.redriven.append((row["id"], following))
                report.last_sequence = max(report.last_sequence, sequence)
        return report

    async def _explain_named(
        self, accounts: frozenset[UUID] | None, named: tuple[UUID, ...], selected: set[UUID], report: RedriveReport
    ) -> None:
        """Each named execution that is not a dead letter of the selection is reported skipped, saying why."""
        wanted = [e for e in dict.fromkeys(named) if e not in selected]
        if not wanted:
            return
        args: list[Any] = [wanted]
        scope = account_scope(accounts, args, "e.account_id")
        found = {row["id"]: row for row in await self._pool.fetch(f"{_NAMED} AND {scope}", *args)}
        for execution_id in wanted:
            row = found.get(execution_id)
            reason = "not found" if row is None else _why_not(row["status"], row["redriven"])
            report.skipped.append((execution_id, reason))

    async def _one(self, execution_id: UUID, number: int, job: JobState | None) -> tuple[UUID, int] | str:
        if job is None:
            return "the job was deleted"
        try:
            msg = await self._js.get_msg(self._names.executions_stream, number)
        except NotFoundError:
            return "the original request is no longer in the stream"
        if msg.data is None:
            return "the original request cannot be read"
        try:
            request = decode_execution_event(msg.data)
        except msgspec.ValidationError:
            return "the original request cannot be read"
        if not isinstance(request, ExecutionRequested) or request.execution_id != execution_id:
            return "the original request cannot be found"
        if request.webhook is not None:
            webhook = next((w for w in job.webhooks if w.id == request.webhook.id), None)
            if webhook is None:
                return "the webhook was removed"
            if not webhook.enabled:
                return "the webhook is disabled (its receiver answered 410 Gone): enable it first"
            request = msgspec.structs.replace(request, webhook=webhook)
        request = msgspec.structs.replace(request, retry=job.retry, timeout_seconds=job.timeout_seconds)
        following = request.next_attempt(self._clock(), redrive=True)
        return following.execution_id, await self._publish(following)
