"""Postgres connections: one asyncpg pool per process, with JSON codecs installed."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection taken from a pool or opened alone: both run queries the same way.
DbConnection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


async def _init(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open a pool; fails fast (10 s) when the database is unreachable."""
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init, timeout=10)
    assert pool is not None
    return pool
