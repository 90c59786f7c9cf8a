"""The ticker service: builds its index from job events and publishes one ExecutionRequested per occurrence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from services.ticker.retry_timers import RetryTimers
from services.ticker.schedule_index import DueOccurrence, MissedOccurrence, ScheduleIndex
from shared.bus.connection import connect, disconnect
from shared.bus.executions import publish_requested, publish_result
from shared.bus.streams import ensure_streams, ticker_bucket, timers_bucket
from shared.contracts.codec import decode_job_event
from shared.contracts.executions import (
    ExecutionMissed,
    ExecutionRequested,
    missed_execution_id,
    occurrence_id,
    occurrence_requests,
)
from shared.contracts.subjects import Names
from shared.contracts.ticker import HEARTBEAT_KEY, WATERMARK_KEY, Heartbeat
from shared.settings import Settings

log = logging.getLogger(__name__)

SAVE_INTERVAL_SECONDS = 1.0
MAX_IDLE_SECONDS = 1.0
PUBLISH_CONCURRENCY = 256


def _now() -> datetime:
    return datetime.now(UTC)


class Ticker:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] = _now) -> None:
        self._settings = settings
        # What the ticker takes the time to be; tests step it to stage outages and clock jumps.
        self._clock = clock
        self._names = Names(settings.namespace)
        self._index = ScheduleIndex()
        self._wakeup = asyncio.Event()
        self._nc: Client | None = None
        self._kv: KeyValue | None = None
        self._watermark: datetime | None = None
        self._saved_watermark: datetime | None = None

    @property
    def index(self) -> ScheduleIndex:
        return self._index

    async def start(self) -> None:
        self._nc = await connect(self._settings.nats_url, "ticker")
        js = self._nc.jetstream()
        await ensure_streams(js, self._settings)
        self._kv = await ticker_bucket(js, self._settings)
        try:
            entry = await self._kv.get(WATERMARK_KEY)
            assert entry.value is not None
            self._watermark = msgspec.json.decode(entry.value, type=datetime)
        except (KeyNotFoundError, KeyDeletedError):
            self._watermark = None
        self._saved_watermark = self._watermark

    async def _follow_jobs(self, js: JetStreamContext, bootstrapped: asyncio.Event, done: asyncio.Event) -> None:
        info = await js.stream_info(self._names.jobs_stream)
        if not info.state.messages:
            bootstrapped.set()
        sub = await js.subscribe(
            self._names.jobs_filter,
            stream=self._names.jobs_stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        try:
            # `done` as well as cancellation: Python 3.11's wait_for (inside next_msg) can swallow a cancel that
            # arrives as a message does, and the loop would then run on.
            while not done.is_set():
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                try:
                    event = decode_job_event(msg.data)
                except msgspec.ValidationError as exc:
                    log.error("ignoring undecodable job message on %s: %s", msg.subject, exc)
                    continue
                # A live change fires from when it happened; during bootstrap, nothing before the watermark again.
                start_after = event.occurred_at
                if not bootstrapped.is_set() and self._watermark is not None:
                    start_after = max(self._watermark, event.occurred_at)
                self._index.apply(event, start_after)
                if not bootstrapped.is_set() and msg.metadata.num_pending == 0:
                    bootstrapped.set()
                    log.info("ticker index built: %d jobs", len(self._index.jobs))
                self._wakeup.set()
        finally:
            await sub.unsubscribe()

    async def _publish(self, js: JetStreamContext, occurrences: list[DueOccurrence]) -> None:
        limiter = asyncio.Semaphore(PUBLISH_CONCURRENCY)
        now = self._clock()

        async def one(event: ExecutionRequested) -> None:
            async with limiter:
                await publish_requested(js, self._names, event)

        # Among occurrences due at the same moment, higher priority is published (and so dispatched) first.
        ordered = sorted(occurrences, key=lambda occ: (occ.nominal_time, -occ.job.priority))
        tasks: list[Coroutine[object, object, None]] = [
            one(event)
            for occ in ordered
            for event in occurrence_requests(
                occ.job,
                job_version=occ.job_version,
                nominal_time=occ.nominal_time,
                occurred_at=now,
                next_run_at=occ.next_due,
            )
        ]
        await asyncio.gather(*tasks)

    async def _record_missed(self, js: JetStreamContext, missed: list[MissedOccurrence]) -> None:
        """One ExecutionMissed per occurrence the misfire policy did not fire: skipped, never silently dropped."""
        limiter = asyncio.Semaphore(PUBLISH_CONCURRENCY)
        now = self._clock()

        async def one(m: MissedOccurrence) -> None:
            occurrence = occurrence_id(m.job.id, m.nominal_time)
            event = ExecutionMissed(
                execution_id=missed_execution_id(occurrence),
                occurrence_id=occurrence,
                job_id=m.job.id,
                account_id=m.job.account_id,
                occurred_at=now,
                nominal_time=m.nominal_time,
                job_name=m.job.name,
                policy=m.policy,
                reason=m.reason,
                more_missed=m.more_missed,
            )
            async with limiter:
                await publish_result(js, self._names, "missed", event, str(event.execution_id))

        await asyncio.gather(*(one(m) for m in missed))
        if any(m.more_missed for m in missed):
            log.warning("more occurrences were missed than are recorded one by one; see ExecutionMissed.more_missed")

    async def _save_state(self, stop: asyncio.Event) -> None:
        assert self._kv is not None
        while not stop.is_set():
            wm = self._watermark
            if wm is not None:
                try:
                    if wm != self._saved_watermark:
                        await self._kv.put(WATERMARK_KEY, msgspec.json.encode(wm))
                        self._saved_watermark = wm
                    beat = Heartbeat(
                        instance=self._settings.worker_id, at=self._clock(), watermark=wm, jobs=len(self._index.jobs)
                    )
                    await self._kv.put(HEARTBEAT_KEY, msgspec.json.encode(beat))
                except (nats.errors.Error, TimeoutError) as exc:
                    # A lagging watermark only widens the overlap deduplication absorbs after a restart: retry.
                    log.warning("could not save ticker state, retrying in %.0f s: %s", SAVE_INTERVAL_SECONDS, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAVE_INTERVAL_SECONDS)

    async def run(self, stop: asyncio.Event) -> None:
        """Fire due occurrences until `stop` is set; the watermark is saved on the way out."""
        if self._nc is None:
            await self.start()
        assert self._nc is not None and self._kv is not None
        js = self._nc.jetstream()
        timers = RetryTimers(await timers_bucket(js, self._settings), lambda r: publish_requested(js, self._names, r))
        await timers.watch()  # here, not in its task: a cancel landing inside the watch's set-up blocks draining
        bootstrapped = asyncio.Event()
        # Set on the way out, for loops that a cancel alone may not end (see _follow_jobs).
        stopping = asyncio.Event()
        follower = asyncio.create_task(self._follow_jobs(js, bootstrapped, stopping))
        timer_loop = asyncio.create_task(timers.run(stopping))
        saver: asyncio.Task[None] | None = None
        grace = timedelta(seconds=self._settings.misfire_grace_seconds)
        # When the ticker last looked: everything due before it was handled. After a restart, the saved watermark.
        looked_until = self._watermark
        try:
            await _first_of(bootstrapped.wait(), stop.wait(), follower)
            saver = asyncio.create_task(self._save_state(stop))
            while not stop.is_set():
                for loop in (follower, timer_loop):
                    if loop.done():
                        loop.result()  # a dead loop must stop the ticker, not leave it half working
                        raise RuntimeError("a ticker loop stopped")
                self._wakeup.clear()
                now = self._clock()
                due = self._index.pop_due(now, grace, looked_until)
                missed = self._index.take_missed()
                if missed:
                    await self._record_missed(js, missed)
                if due:
                    await self._publish(js, due)
                self._watermark = now
                # Not `now`: what fell due while publishing was late, not missed.
                looked_until = self._clock()
                nxt = self._index.next_due()
                delay = MAX_IDLE_SECONDS if nxt is None else (nxt - self._clock()).total_seconds()
                if delay > 0:
                    await _first_of(self._wakeup.wait(), stop.wait(), timeout=min(delay, MAX_IDLE_SECONDS))
        finally:
            stopping.set()
            follower.cancel()
            timer_loop.cancel()
            if saver is not None:
                await saver
            await asyncio.gather(follower, timer_loop, return_exceptions=True)
            if self._watermark is not None and self._watermark != self._saved_watermark:
                await self._kv.put(WATERMARK_KEY, msgspec.json.encode(self._watermark))
            await disconnect(self._nc)
            self._nc = None


async def _first_of(*aws: Awaitable[object], timeout: float | None = None) -> None:
    """Wait for the first of several awaitables; cancel the others unless they are tasks owned elsewhere.

    A completed one that raised re-raises here.
    """
    futures = [asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for fut, original in zip(futures, aws, strict=True):
        if fut in pending and fut is not original:
            fut.cancel()
    for fut in done:
        if (exc := fut.exception()) is not None:
            raise exc


def build_ticker(settings: Settings, clock: Callable[[], datetime] = _now) -> Ticker:
    """Wire the ticker from settings; nothing connects until start()."""
    return Ticker(settings, clock)
