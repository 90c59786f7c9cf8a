"""`uv run python -m bench.projector_writes`: what the projector's writes cost PostgreSQL, before and after issue 17.

No NATS and no services: execution events are made in memory, turned into the projector's steps and applied as
`stream_reader` applies a batch (one transaction each), on embedded PostgreSQL. "before" is the projector as it was:
each group of one kind of write sent with `executemany`, no folding, counters moved by the row-level trigger;
"after" is the projector as it is: one statement over arrays per group, an execution's events in one batch folded
into one insert, counters moved once per statement. Shapes: requested + succeeded in one batch (most executions once
the dispatcher publishes a start only for long attempts), requested in one batch and succeeded in the next, and the
old requested + started + succeeded in one batch.

Prints, per shape and variant: wall time, CPU of the PostgreSQL backend (from /proc) and of this process, round trips,
statements the server executed, and row versions written to executions and execution_stats.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.embedded import EmbeddedPostgres
from services.projector import migrations
from services.projector.batched_writes import Statement, Step, Write, columns, statements
from services.projector.execution_projection import execution_step
from services.projector.migrate import migrate
from shared.contracts.executions import (
    ExecutionEvent,
    ExecutionStarted,
    ExecutionSucceeded,
    envelope_of,
    occurrence_requests,
)
from shared.contracts.jobs import JobState, WebhookSpec
from shared.contracts.schedules import CronSchedule
from shared.db.pool import DbConnection, create_pool

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# The counters as they were (migration 0002): one trigger call per row version. Read from the migration itself, so
# the reference is the trigger that ran, not a copy of it.
MIGRATION_0002 = Path(migrations.__file__).parent / "0002_webhook_content_type_and_stats.sql"


def row_trigger_sql() -> str:
    """SQL that puts migration 0002's row-level counter trigger back in place of 0008's statement-level ones."""
    text = MIGRATION_0002.read_text()
    begin = text.index("CREATE FUNCTION count_execution()")
    finish = text.index("EXECUTE FUNCTION count_execution();", begin) + len("EXECUTE FUNCTION count_execution();")
    drops = "".join(f"DROP TRIGGER executions_{kind}_counted ON executions;\n" for kind in ("inserted", "updated"))
    return drops + text[begin:finish] + "\n"


ROW_TRIGGER = row_trigger_sql()


def _jobs(count: int) -> list[JobState]:
    account = uuid.uuid4()
    states = []
    for i in range(count):
        hook = WebhookSpec(id=uuid.uuid4(), url="https://example.com/h", created_at=T0, updated_at=T0)
        states.append(
            JobState(
                id=uuid.uuid4(),
                account_id=account,
                name=f"j{i}",
                type=1,
                schedule=CronSchedule(expression="* * * * * *"),
                webhooks=(hook,),
                created_at=T0,
                updated_at=T0,
            )
        )
    return states


def _execution(states: list[JobState], n: int, *, started: bool) -> tuple[list[ExecutionEvent], ExecutionEvent]:
    """(requested [and started], succeeded) of the n-th execution."""
    nominal = T0 + timedelta(seconds=n // len(states))
    (request,) = occurrence_requests(
        states[n % len(states)], job_version=1, nominal_time=nominal, occurred_at=nominal,
        next_run_at=nominal + timedelta(seconds=1),
    )  # fmt: skip
    common = envelope_of(request)
    began, done = nominal + timedelta(milliseconds=5), nominal + timedelta(milliseconds=25)
    first: list[ExecutionEvent] = [request]
    if started:
        first.append(ExecutionStarted(**common, occurred_at=began, worker_id="w", started_at=began))
    result = ExecutionSucceeded(
        **common, occurred_at=done, worker_id="w", started_at=began, finished_at=done, duration_ms=20,
        response_code=200, response_body="ok",
    )  # fmt: skip
    return first, result


def batches(shape: str, states: list[JobState], count: int, size: int) -> Iterator[list[ExecutionEvent]]:
    """`count` batches of `size` executions each in `shape`: "together", "split" (results in the next batch, and
    a last batch with the last results), "started" (requested, started, succeeded together)."""
    held: list[ExecutionEvent] = []
    for b in range(count):
        batch: list[ExecutionEvent] = list(held)
        held = []
        for n in range(b * size, (b + 1) * size):
            first, result = _execution(states, n, started=shape == "started")
            batch.extend(first)
            if shape == "split":
                held.append(result)
            else:
                batch.append(result)
        yield batch
    if held:
        yield held


def legacy(step: Step) -> Step:
    """The step as the projector made it before: no set-based forms, nothing to fold."""
    return Step(step.key, step.phase, tuple(Write(w.sql, w.args) for w in step.writes))


class Counting:
    """Sends statements as apply_steps does and counts round trips and statements the server executes."""

    def __init__(self, conn: DbConnection) -> None:
        self.conn = conn
        self.round_trips = 0
        self.executed = 0

    async def apply(self, steps: list[Step]) -> None:
        for statement in statements(steps):
            await self._send(statement)

    async def _send(self, statement: Statement) -> None:
        sql, rows = statement.sql, statement.rows
        self.round_trips += 1
        if statement.many is not None and statement.fallback:
            self.executed += 1
            inserted = {r[0] for r in await self.conn.fetch(statement.many.sql, *columns(statement.many, rows))}
            for rest in statements(s for s in statement.fallback if s.key not in inserted):
                await self._send(rest)
        elif statement.many is not None:
            self.executed += 1
            await self.conn.execute(statement.many.sql, *columns(statement.many, rows))
        elif len(rows) == 1:
            self.executed += 1
            await self.conn.execute(sql, *rows[0])
        else:
            self.executed += len(rows)
            await self.conn.executemany(sql, rows)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(url: str, shape: str, variant: str, count: int, size: int) -> dict[str, float]:
    schema = f"{variant}_{shape}"
    pool = await create_pool(url, max_size=1, schema=schema)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"CREATE SCHEMA {schema}")
            await migrate(conn)
            if variant == "before":
                await conn.execute(ROW_TRIGGER)
            await conn.execute("SELECT pg_stat_force_next_flush()")
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            states = _jobs(200)
            prepared: list[list[Step]] = []
            for n, batch in enumerate(batches(shape, states, count, size)):
                made = [execution_step(e, n * 10_000 + i) for i, e in enumerate(batch, 1)]
                chosen = [s if variant == "after" else legacy(s) for s in made if s is not None]
                prepared.append(chosen)
            counting = Counting(conn)
            server, client, wall = _cpu_seconds(pid), time.process_time(), time.perf_counter()
            for batch_steps in prepared:
                async with conn.transaction():
                    await counting.apply(batch_steps)
            wall = time.perf_counter() - wall
            server, client = _cpu_seconds(pid) - server, time.process_time() - client
            await conn.execute("SELECT pg_stat_force_next_flush()")
            await asyncio.sleep(0)
            versions = {
                r["relname"]: r["n"]
                for r in await conn.fetch(
                    "SELECT relname, n_tup_ins + n_tup_upd AS n FROM pg_stat_user_tables WHERE schemaname = $1",
                    schema,
                )
            }
            executions = await conn.fetchval("SELECT count(*) FROM executions")
    finally:
        await pool.close()
    return {
        "executions": executions,
        "wall_s": wall,
        "server_cpu_s": server,
        "client_cpu_s": client,
        "round_trips": counting.round_trips,
        "statements": counting.executed,
        "executions_row_versions": versions.get("executions", 0),
        "stats_row_versions": versions.get("execution_stats", 0),
    }


async def main(url: str, count: int, size: int) -> None:
    print(f"{count} batches of {size} executions; figures per run (and per 1,000 executions)")
    header = "shape     variant  wall s  server CPU s  client CPU s  round trips  statements  rows: executions  stats"
    print(header)
    for shape in ("together", "split", "started"):
        for variant in ("before", "after"):
            f = await run(url, shape, variant, count, size)
            per = 1000 / f["executions"]
            print(
                f"{shape:9} {variant:7} {f['wall_s']:6.2f}  {f['server_cpu_s']:12.2f}  {f['client_cpu_s']:12.2f}"
                f"  {f['round_trips']:11.0f}  {f['statements']:10.0f}  {f['executions_row_versions']:16.0f}"
                f"  {f['stats_row_versions']:5.0f}   (server CPU {f['server_cpu_s'] * per * 1000:.1f} ms/1k)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--database-url", help="an existing server (default: embedded PostgreSQL in a temp dir)")
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(main(args.database_url, args.batches, args.size))
    else:
        with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres(Path(tmp) / "pg") as server:
            asyncio.run(main(server.url("postgres"), args.batches, args.size))
