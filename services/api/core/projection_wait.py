"""Read-your-writes: wait until the projector has applied a stream position (LISTEN/NOTIFY, bounded)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import asyncpg

from shared.contracts.subjects import Names

log = logging.getLogger(__name__)

RECONNECT_TIMEOUT_SECONDS = 2.0
# A listening connection lost (PostgreSQL restarted) is opened again this often until it works, in the background:
# commands wait for notifications again as soon as the database is back, not after a wait timed out.
RELISTEN_EVERY_SECONDS = 1.0


class ProjectionWatcher:
    """Tracks how far each stream is projected, from notifications plus a table read as a fallback."""

    def __init__(self, dsn: str, channel: str) -> None:
        self._dsn = dsn
        self._channel = channel
        self._positions: dict[str, int] = defaultdict(int)
        self._changed = asyncio.Condition()
        self._conn: asyncpg.Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Many waits can time out together (every open dashboard page waits on each event): one connection, so one
        # refresh at a time.
        self._refreshing = asyncio.Lock()
        self._refreshes = 0  # how many have finished: a waiter that queued behind one needs no other
        self._relistening: asyncio.Task[None] | None = None
        self._closed = False

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        assert isinstance(payload, str)
        stream, _, position = payload.rpartition(":")
        if position.isdigit() and int(position) > self._positions[stream]:
            self._positions[stream] = int(position)
            task = asyncio.get_running_loop().create_task(self._notify_all())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _notify_all(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def start(self) -> None:
        await self._listen(timeout=10)
        await self._refresh()

    async def _listen(self, timeout: float) -> asyncpg.Connection:
        self._conn = conn = await asyncpg.connect(self._dsn, timeout=timeout)
        await conn.add_listener(self._channel, self._on_notify)
        conn.add_termination_listener(self._on_lost)
        return conn

    def _on_lost(self, _conn: object) -> None:
        if not self._closed and (self._relistening is None or self._relistening.done()):
            self._relistening = asyncio.get_running_loop().create_task(self._relisten())

    async def _relisten(self) -> None:
        """Open the listening connection again, then catch up on what was projected while it was away."""
        log.warning("lost the connection listening for projection positions; opening it again")
        while not self._closed:
            await self._refresh()
            if self._conn is not None and not self._conn.is_closed():
                await self._notify_all()
                log.info("listening for projection positions again")
                return
            await asyncio.sleep(RELISTEN_EVERY_SECONDS)

    async def _refresh(self) -> None:
        """Read positions from the table; re-open the listening connection if it was lost (Postgres restarted).
        Callers that arrive while one runs share its result instead of queueing a refresh each."""
        seen = self._refreshes
        async with self._refreshing:
            if self._refreshes != seen:
                return
            try:
                await self._refresh_now()
            finally:
                self._refreshes += 1

    async def _refresh_now(self) -> None:
        try:
            conn = self._conn
            if conn is None or conn.is_closed():
                conn = await self._listen(timeout=RECONNECT_TIMEOUT_SECONDS)
            rows = await conn.fetch("SELECT stream, position FROM projector_positions")
        except asyncpg.UndefinedTableError:
            return
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.warning("cannot read projection positions: %s", exc)
            if self._conn is not None:
                self._conn.terminate()
            return
        for row in rows:
            self._positions[row["stream"]] = max(self._positions[row["stream"]], int(row["position"]))

    def position(self, stream: str) -> int:
        """How far `stream` is known to be projected."""
        return self._positions[stream]

    async def wait_for(self, stream: str, position: int, timeout: float) -> bool:
        """True once `stream` is projected up to `position`; False if that takes longer than `timeout`."""
        if self._positions[stream] >= position:
            return True
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: self._positions[stream] >= position)
            return True
        except TimeoutError:
            await self._refresh()
            reached = self._positions[stream] >= position
            if not reached:
                log.warning("read model of %s not at %d after %.1f s", stream, position, timeout)
            return reached

    async def close(self) -> None:
        self._closed = True
        if self._relistening is not None:
            self._relistening.cancel()
            await asyncio.gather(self._relistening, return_exceptions=True)
        if self._conn is not None:
            try:
                await self._conn.close(timeout=RECONNECT_TIMEOUT_SECONDS)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                self._conn.terminate()
            self._conn = None


class ProjectionWait:
    """Read-your-writes for a handler: return once the read model includes a write it made, bounded by
    settings (a write not yet projected by then is answered anyway: it is in the log)."""

    def __init__(self, watcher: ProjectionWatcher, names: Names, timeout_seconds: float) -> None:
        self._watcher = watcher
        self._names = names
        self._timeout = timeout_seconds

    async def job_event(self, sequence: int) -> None:
        """Once the jobs stream is projected up to `sequence`."""
        await self._watcher.wait_for(self._names.jobs_stream, sequence, self._timeout)

    async def execution_event(self, sequence: int) -> None:
        """Once the executions stream is projected up to `sequence`."""
        await self._watcher.wait_for(self._names.executions_stream, sequence, self._timeout)
