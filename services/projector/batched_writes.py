"""Applying a batch of events with one round trip per kind of statement instead of one per event.

Each event becomes a Step: the writes it makes, the key of the rows it is about (an execution, a job) and its
phase (where it sits in that row's life: requested, started, finished, ...). Steps of different keys commute; steps
of one key commute with their stream order as long as they run in phase order. So a run of steps in which every
key's phases rise can be grouped by statement, each group sent with `executemany` (pipelined by asyncpg), groups in
phase order. A step whose key already reached that phase in the run (a redelivered or out-of-order event) ends the
run first, and a step that touches rows beyond its own key (`key=None`: a re-drive, a missed occurrence) runs alone.
The result is the same as applying the events one by one in stream order, which a test checks.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from shared.db.pool import DbConnection


@dataclass(frozen=True, slots=True)
class Write:
    sql: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Step:
    """The writes of one event; `key` None applies it alone, in stream order."""

    key: Hashable | None
    phase: int
    writes: tuple[Write, ...]


async def apply_steps(conn: DbConnection, steps: Iterable[Step], *, grouped: bool = True) -> None:
    """Apply `steps` with the effect of applying them one by one in order; `grouped=False` does exactly that."""
    run: list[Step] = []
    reached: dict[Hashable, int] = {}
    for step in steps:
        if not grouped or step.key is None or reached.get(step.key, -1) >= step.phase:
            await _send(conn, run)
            run.clear()
            reached.clear()
            if not grouped or step.key is None:
                await _send(conn, [step])
                continue
        reached[step.key] = step.phase
        run.append(step)
    await _send(conn, run)


async def _send(conn: DbConnection, run: list[Step]) -> None:
    groups: dict[tuple[int, str], list[tuple[Any, ...]]] = {}
    for step in sorted(run, key=lambda s: s.phase):  # stable: stream order within a phase
        for write in step.writes:
            groups.setdefault((step.phase, write.sql), []).append(write.args)
    for (_, sql), args in groups.items():
        if len(args) == 1:
            await conn.execute(sql, *args[0])
        else:
            await conn.executemany(sql, args)
