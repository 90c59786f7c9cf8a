"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.projector.migrate import migrate
from shared.db.pool import DbConnection, create_pool


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[DbConnection]:
    """A connection to a fresh database with the read models' migrations applied."""
    pool = await create_pool(database_url, max_size=1)
    async with pool.acquire() as connection:
        await migrate(connection)
        yield connection
    await pool.close()
