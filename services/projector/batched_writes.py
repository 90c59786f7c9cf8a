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

from collections.abc import Hashable, Iterable, Iterator
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


@dataclass(frozen=True, slots=True)
class Statement:
    """One round trip: `sql` with one argument tuple (`execute`) or several (`executemany`)."""

    sql: str
    rows: list[tuple[Any, ...]]


async def apply_steps(conn: DbConnection, steps: Iterable[Step], *, grouped: bool = True) -> None:
    """Apply `steps` with the effect of applying them one by one in order; `grouped=False` does exactly that."""
    for statement in statements(steps, grouped=grouped):
        if len(statement.rows) == 1:
            await conn.execute(statement.sql, *statement.rows[0])
        else:
            await conn.executemany(statement.sql, statement.rows)


def statements(steps: Iterable[Step], *, grouped: bool = True) -> Iterator[Statement]:
    """The round trips that apply `steps`, in order: each run of steps grouped by statement, in phase order.

    Lazy: a run's statements come as soon as the step that ends it is read.
    """
    run: list[Step] = []
    reached: dict[Hashable, int] = {}
    for step in steps:
        if not grouped or step.key is None or reached.get(step.key, -1) >= step.phase:
            yield from _grouped(run)
            run.clear()
            reached.clear()
            if not grouped or step.key is None:
                yield from _grouped([step])
                continue
        reached[step.key] = step.phase
        run.append(step)
    yield from _grouped(run)


def _grouped(run: list[Step]) -> Iterator[Statement]:
    groups: dict[tuple[int, str], list[tuple[Any, ...]]] = {}
    for step in sorted(run, key=lambda s: s.phase):  # stable: stream order within a phase
        for write in step.writes:
            groups.setdefault((step.phase, write.sql), []).append(write.args)
    for (_, sql), rows in groups.items():
        yield Statement(sql, rows)
