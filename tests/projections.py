"""A projection of a plain test stream whose every event leaves a marker row: what was applied, once, in order."""

from __future__ import annotations

import uuid

import asyncpg

from services.projector.batched_writes import Step, Write
from services.projector.stream_reader import Projection

_MARK = "INSERT INTO projector_positions (stream, position) VALUES ($1, $2)"


def marker_projection(stream: str) -> Projection:
    """`stream` (subjects `<stream>.>`), each event a row named after its stream and the payload's first word, at
    its stream sequence."""

    def step(event: bytes, sequence: int) -> Step:
        return Step(uuid.uuid4(), 0, (Write(_MARK, (f"marker {stream} {event.split()[0].decode()}", sequence)),))

    return Projection(stream=stream, filter_subject=f"{stream}.>", decode=lambda b: b, step=step)


async def markers(pool: asyncpg.Pool, stream: str) -> list[tuple[str, int]]:
    """The marker rows of `stream`, by position."""
    rows = await pool.fetch(
        "SELECT stream, position FROM projector_positions WHERE stream LIKE $1 ORDER BY position", f"marker {stream} %"
    )
    return [(r["stream"], r["position"]) for r in rows]
