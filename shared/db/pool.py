"""Postgres connections: one asyncpg pool per process, with JSON codecs installed."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

# A connection taken from a pool or opened alone: both run queries the same way.
DbConnection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


def without_nul(value: Any) -> Any:
    """`value` with every NUL in its strings (keys included) replaced by U+FFFD: Postgres text and jsonb refuse NUL,
    and receivers and tasks may answer with one."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """JSON for json/jsonb parameters. Postgres refuses \u0000 in jsonb, and one such value (a task's result, a
    job's metadata) would stop a projection for good, so NUL becomes U+FFFD, as in text columns."""
    text = msgspec.json.encode(value).decode()  # several times json.dumps's speed, for the same JSON values
    return msgspec.json.encode(without_nul(value)).decode() if "\\u0000" in text else text


async def _init(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json_text, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    schema: str | None = None,
    command_timeout: float | None = None,
) -> asyncpg.Pool:
    """Open a pool; connecting fails fast (10 s, or `command_timeout` if shorter) when the database is unreachable.
    `schema`: work in that schema instead of the default one (a replay builds its tables there).
    `command_timeout`: a query with no answer by then raises TimeoutError."""
    settings = {"search_path": schema} if schema is not None else None
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init,
        timeout=min(10.0, command_timeout or 10.0),
        server_settings=settings,
        command_timeout=command_timeout,
    )
    return pool
