"""Applying a batch of events with one statement per kind of write instead of one per event.

Each event becomes a Step: the writes it makes, the key of the rows it is about (an execution, a job) and its
phase (where it sits in that row's life: requested, started, finished, ...). Steps of different keys commute; steps
of one key commute with their stream order as long as they run in phase order. So a run of steps in which every
key's phases rise can be grouped by statement, groups in phase order. A step whose key already reached that phase in
the run (a redelivered or out-of-order event) ends the run first, and a step that touches rows beyond its own key
(`key=None`: a re-drive, a missed occurrence) runs alone.

A group goes in one round trip: as one statement over arrays where its write has a set-based form (`Many`: the rows'
values as one array per parameter, unnested in the statement), else pipelined with `executemany`.

Folding: a step whose first write inserts its key's row, ignoring a row that exists (`Folding`), takes the later
steps of its key in the run that say what they do to that row (`change`) into one insert of the row as they leave it.
Where the row existed after all (the insert returns no key for it), those steps are applied after the insert as they
are, with their own guards, exactly as one by one.

The result is the same as applying the events one by one in stream order, which the tests check.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

import msgspec

from shared.db.pool import DbConnection, json_text


class Many(msgspec.Struct, frozen=True):
    """The set-based form of a write: `sql` takes one array per parameter of the one-row statement, in row order, and
    does to every row what the one-row statement does to one (a reduction in it where one statement would touch a
    row twice). `json`: the parameters sent as JSON text (asyncpg cannot send a jsonb[] of arbitrary values), which
    `sql` casts to jsonb."""

    sql: str
    json: frozenset[int] = frozenset()


class Write(msgspec.Struct, frozen=True):
    sql: str
    args: tuple[Any, ...]
    many: Many | None = None


class Folding(msgspec.Struct, frozen=True):
    """How a step's first write (an insert of its key's row that ignores a row that exists) takes in later steps.

    `row` is the row as that insert makes it; `insert` inserts rows as `args(row)` gives them instead, ignoring rows
    that exist, and returns the key of each row it inserted."""

    row: Any
    insert: Many
    args: Callable[[Any], tuple[Any, ...]]


class Step(msgspec.Struct, frozen=True):
    """The writes of one event; `key` None applies it alone, in stream order.

    `folding`: its first write creates the key's row and can take in later steps (see Folding).
    `change`: what its writes do to the key's row (the row unchanged where their guards refuse it); a step with one
    can be folded into an earlier insert of the row in the same run."""

    key: Hashable | None
    phase: int
    writes: tuple[Write, ...]
    folding: Folding | None = None
    change: Callable[[Any], Any] | None = None


class Statement(msgspec.Struct, frozen=True):
    """One round trip: `sql` with one argument tuple per row; with `many`, one statement over arrays of them.

    `fallback`: for a folded insert, the steps folded into it, applied after it to the rows whose keys it did not
    return (they existed)."""

    sql: str
    rows: list[tuple[Any, ...]]
    many: Many | None = None
    fallback: tuple[Step, ...] = ()


async def apply_steps(conn: DbConnection, steps: Iterable[Step], *, grouped: bool = True) -> None:
    """Apply `steps` with the effect of applying them one by one in order; `grouped=False` does exactly that."""
    for statement in statements(steps, grouped=grouped):
        await _send(conn, statement)


async def _send(conn: DbConnection, statement: Statement) -> None:
    if statement.many is not None and statement.fallback:
        inserted = await conn.fetch(statement.many.sql, *columns(statement.many, statement.rows))
        keys = {row[0] for row in inserted}
        for rest in statements(s for s in statement.fallback if s.key not in keys):
            await _send(conn, rest)
    elif statement.many is not None:
        await conn.execute(statement.many.sql, *columns(statement.many, statement.rows))
    elif len(statement.rows) == 1:
        await conn.execute(statement.sql, *statement.rows[0])
    else:
        await conn.executemany(statement.sql, statement.rows)


def columns(many: Many, rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """The arguments of a set-based statement: one list per parameter, in row order."""
    arrays = [list(values) for values in zip(*rows, strict=True)]
    for index in many.json:
        arrays[index] = [None if v is None else json_text(v) for v in arrays[index]]
    return arrays


def statements(steps: Iterable[Step], *, grouped: bool = True) -> Iterator[Statement]:
    """The round trips that apply `steps`, in order: each run of steps folded and grouped by statement, in phase order.

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
                yield from _alone(step)
                continue
        reached[step.key] = step.phase
        run.append(step)
    yield from _grouped(run)


def _alone(step: Step) -> Iterator[Statement]:
    for write in step.writes:
        yield Statement(write.sql, [write.args])


def _folded(run: list[Step]) -> list[tuple[Step, tuple[Step, ...]]]:
    """The run in phase order, each key's foldable steps taken into its insert, beside the steps each step took in.

    A key folds when its first step in the run creates its row; the steps that follow it in phase order fold as long
    as each says what it does to the row."""
    ordered = sorted(run, key=lambda s: s.phase)  # stable: stream order within a phase
    by_key: dict[Hashable, list[Step]] = {}
    for step in ordered:
        by_key.setdefault(step.key, []).append(step)
    folds: dict[int, tuple[Write, tuple[Step, ...]]] = {}  # by the id of the step that folds: its insert, the taken
    for first, *rest in by_key.values():
        if first.folding is None:
            continue
        row, count = first.folding.row, 0
        for step in rest:
            if step.change is None:
                break
            row, count = step.change(row), count + 1
        if count:
            many = first.folding.insert
            folds[id(first)] = Write(many.sql, first.folding.args(row), many), tuple(rest[:count])
    taken = {id(s) for _, steps in folds.values() for s in steps}
    out: list[tuple[Step, tuple[Step, ...]]] = []
    for step in ordered:
        if id(step) in folds:
            folded, steps = folds[id(step)]
            out.append((Step(step.key, step.phase, (folded, *step.writes[1:])), steps))
        elif id(step) not in taken:
            out.append((step, ()))
    return out


def _grouped(run: list[Step]) -> Iterator[Statement]:
    groups: dict[tuple[int, str], tuple[Many | None, list[tuple[Any, ...]], list[Step]]] = {}
    for step, taken in _folded(run):
        for index, write in enumerate(step.writes):
            _, rows, fallback = groups.setdefault((step.phase, write.sql), (write.many, [], []))
            rows.append(write.args)
            if index == 0:
                fallback.extend(taken)
    for (_, sql), (many, rows, fallback) in groups.items():
        if many is not None and (len(rows) > 1 or fallback):
            yield Statement(sql, rows, many, tuple(fallback))
        else:
            yield Statement(sql, rows)
