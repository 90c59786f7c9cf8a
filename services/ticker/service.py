"""The ticker service: builds its index from job events and publishes one ExecutionRequested per occurrence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Coroutine
from datetime import UTC, datetime, timedelta

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from services.ticker.schedule_index import DueOccurrence, ScheduleIndex
from shared.bus.connection import connect
from shared.bus.streams import ensure_streams, ticker_bucket
from shared.contracts.codec import decode_job_event, encode
from shared.contracts.executions import ExecutionRequested, execution_id, occurrence_id
from shared.contracts.jobs import WebhookSpec
from shared.contracts.subjects import Names
from shared.settings import Settings

log = logging.getLogger(__name__)

WATERMARK_KEY = "watermark"
HEARTBEAT_KEY = "heartbeat"
SAVE_INTERVAL_SECONDS = 1.0
MAX_IDLE_SECONDS = 1.0
PUBLISH_CONCURRENCY = 256


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """What the ticker writes to its bucket so others can tell it is alive."""

    instance: str
    at: datetime
    watermark: datetime
    jobs: int


def _now() -> datetime:
    return datetime.now(UTC)


class Ticker:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
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

    async def _follow_jobs(self, js: JetStreamContext, bootstrapped: asyncio.Event) -> None:
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
            while True:
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
        now = _now()

        async def one(occ: DueOccurrence, webhook: WebhookSpec | None) -> None:
            job = occ.job
            occ_id = occurrence_id(job.id, occ.nominal_time)
            event = ExecutionRequested(
                execution_id=execution_id(occ_id, webhook.id if webhook else None, 1),
                occurrence_id=occ_id,
                job_id=job.id,
                account_id=job.account_id,
                occurred_at=now,
                nominal_time=occ.nominal_time,
                job_version=occ.job_version,
                job_name=job.name,
                webhook=webhook,
                next_run_at=occ.next_due,
            )
            subject = self._names.execution_subject("requested", job.account_id, job.id)
            async with limiter:
                await js.publish(subject, encode(event), headers={"Nats-Msg-Id": str(event.execution_id)})

        tasks: list[Coroutine[object, object, None]] = []
        for occ in occurrences:
            targets: tuple[WebhookSpec | None, ...] = occ.job.webhooks or (None,)
            tasks.extend(one(occ, webhook) for webhook in targets)
        await asyncio.gather(*tasks)

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
                        instance=self._settings.worker_id, at=_now(), watermark=wm, jobs=len(self._index.jobs)
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
        bootstrapped = asyncio.Event()
        follower = asyncio.create_task(self._follow_jobs(js, bootstrapped))
        saver: asyncio.Task[None] | None = None
        grace = timedelta(seconds=self._settings.misfire_grace_seconds)
        try:
            await _first_of(bootstrapped.wait(), stop.wait(), follower)
            saver = asyncio.create_task(self._save_state(stop))
            while not stop.is_set():
                if follower.done():
                    follower.result()  # a dead follower must stop the ticker, not leave a stale index
                    raise RuntimeError("job event follower stopped")
                self._wakeup.clear()
                now = _now()
                due = self._index.pop_due(now, grace)
                if due:
                    await self._publish(js, due)
                self._watermark = now
                nxt = self._index.next_due()
                delay = MAX_IDLE_SECONDS if nxt is None else (nxt - _now()).total_seconds()
                if delay > 0:
                    await _first_of(self._wakeup.wait(), stop.wait(), timeout=min(delay, MAX_IDLE_SECONDS))
        finally:
            follower.cancel()
            if saver is not None:
                await saver
            await asyncio.gather(follower, return_exceptions=True)
            if self._watermark is not None and self._watermark != self._saved_watermark:
                await self._kv.put(WATERMARK_KEY, msgspec.json.encode(self._watermark))
            await self._nc.drain()
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


def build_ticker(settings: Settings) -> Ticker:
    """Wire the ticker from settings; nothing connects until start()."""
    return Ticker(settings)
