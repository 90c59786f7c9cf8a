"""The projector's counters, summed per account or over a set of accounts (job_stats, execution_stats), and the
condition that limits any query to the caller's accounts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from shared.db.pool import DbConnection

# The execution counters: of the rows the executions table holds, and of those purged after the retention.
_COUNTERS = (
    "(SELECT account_id, status, executions, duration_ms_sum, durations FROM execution_stats"
    " UNION ALL SELECT account_id, status, executions, duration_ms_sum, durations FROM execution_stats_purged) c"
)


@dataclass(slots=True)
class AccountStats:
    """One account's counters, as the Prometheus view shows them."""

    account_id: UUID
    jobs_total: int = 0
    jobs_enabled: int = 0
    executions: dict[str, int] = field(default_factory=dict)
    duration_ms_sum: int = 0
    durations: int = 0


def account_scope(accounts: frozenset[UUID] | None, args: list[Any], column: str = "account_id") -> str:
    """The SQL condition limiting `column` to `accounts` (None: every account); appends its parameter to `args`."""
    if accounts is None:
        return "TRUE"
    if len(accounts) == 1:  # the usual token: an equality lets an (account, time) index give rows in order
        args.append(next(iter(accounts)))
        return f"{column} = ${len(args)}"
    args.append(list(accounts))
    return f"{column} = ANY(${len(args)}::uuid[])"


async def account_stats(pool: asyncpg.Pool, accounts: frozenset[UUID] | None) -> list[AccountStats]:
    """Per-account counters over `accounts` (None: every account), ordered by account."""
    args: list[Any] = []
    scope = account_scope(accounts, args)
    by_account: dict[UUID, AccountStats] = {}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        for row in await conn.fetch(f"SELECT account_id, total, enabled FROM job_stats WHERE {scope}", *args):
            stats = by_account.setdefault(row["account_id"], AccountStats(row["account_id"]))
            stats.jobs_total, stats.jobs_enabled = int(row["total"]), int(row["enabled"])
        for row in await conn.fetch(
            "SELECT account_id, status, sum(executions) AS executions, sum(duration_ms_sum) AS duration_ms_sum,"
            f" sum(durations) AS durations FROM {_COUNTERS} WHERE {scope} GROUP BY account_id, status",
            *args,
        ):
            stats = by_account.setdefault(row["account_id"], AccountStats(row["account_id"]))
            stats.executions[row["status"]] = int(row["executions"])
            stats.duration_ms_sum += int(row["duration_ms_sum"])
            stats.durations += int(row["durations"])
    return [by_account[a] for a in sorted(by_account)]


@dataclass(frozen=True, slots=True)
class CounterTotals:
    """The projector's counters summed over a set of accounts."""

    jobs_total: int
    jobs_enabled: int
    by_status: dict[str, int]
    duration_ms_sum: int
    durations: int

    @property
    def executions(self) -> int:
        return sum(self.by_status.values())

    def count(self, *statuses: str) -> int:
        return sum(self.by_status.get(s, 0) for s in statuses)

    @property
    def average_duration_ms(self) -> float:
        return self.duration_ms_sum / self.durations if self.durations else 0.0


async def counter_totals(conn: DbConnection, accounts: frozenset[UUID] | None) -> CounterTotals:
    """Sum the counters over `accounts` (None: every account); run it inside the caller's transaction."""
    args: list[Any] = []
    scope = account_scope(accounts, args)
    # An aggregate without GROUP BY has exactly one row.
    [jobs] = await conn.fetch(
        f"SELECT COALESCE(sum(total), 0) AS total, COALESCE(sum(enabled), 0) AS enabled FROM job_stats WHERE {scope}",
        *args,
    )
    rows = await conn.fetch(
        "SELECT status, sum(executions) AS n, sum(duration_ms_sum) AS ms, sum(durations) AS timed"
        f" FROM {_COUNTERS} WHERE {scope} GROUP BY status",
        *args,
    )
    return CounterTotals(
        jobs_total=int(jobs["total"]),
        jobs_enabled=int(jobs["enabled"]),
        by_status={r["status"]: int(r["n"]) for r in rows},
        duration_ms_sum=sum(int(r["ms"]) for r in rows),
        durations=sum(int(r["timed"]) for r in rows),
    )
