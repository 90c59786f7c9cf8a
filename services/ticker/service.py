"""The ticker service: builds its index from job events and publishes one ExecutionRequested per occurrence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from services.ticker.partitions import PartitionLeases
from services.ticker.publishing import publish_due, record_missed
from services.ticker.retry_timers import RetryTimers
from services.ticker.schedule_index import ScheduleIndex
from shared.bus.connection import BUS_ERRORS, connect, disconnect
from shared.bus.executions import publish_requested
from shared.bus.leases import Leases, leases_bucket
from shared.bus.ordered_reader import OrderedReader
from shared.bus.streams import ensure_streams, ticker_bucket, timers_bucket
from shared.bus.withdrawals import withdraw, withdrawn_bucket
from shared.contracts.codec import decode_job_event
from shared.contracts.jobs import JobCreated, JobDeleted, JobEvent, JobPaused, JobResumed, JobUpdated
from shared.contracts.subjects import PARTITIONS, Names, partition_of
from shared.contracts.ticker import HEARTBEAT_KEY, WATERMARK_KEY, Heartbeat, watermark_key
from shared.observability.metrics import PARTITIONS_HELD
from shared.runtime.periodic import periodically
from shared.runtime.tasks import task_group, until_stopped
from shared.settings import Settings

log = logging.getLogger(__name__)

SAVE_INTERVAL_SECONDS = 1.0
MAX_IDLE_SECONDS = 1.0
FOLLOW_BATCH = 1000
TAKE_SLICE = 2000
# Errors of a bus that is briefly unreachable: a periodic step that meets one tries again next time.


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TickerBuckets:
    """The KV buckets the ticker works with."""

    state: KeyValue  # watermarks and the heartbeat
    withdrawn: KeyValue  # executions published ahead and withdrawn since
    leases: KeyValue
    timers: KeyValue  # attempts due later


class Ticker:
    """Fires the jobs of the partitions it holds leases on (all of them when it runs alone)."""

    def __init__(
        self, settings: Settings, js: JetStreamContext, buckets: TickerBuckets, clock: Callable[[], datetime] = _now
    ) -> None:
        self._settings = settings
        self._js = js
        # What the ticker takes the time to be; tests step it to stage outages and clock jumps.
        self._clock = clock
        self._names = Names(settings.namespace)
        self._index = ScheduleIndex()
        # The latest event of every live job, whichever partition: taking over a partition needs no replay.
        self._catalog: dict[UUID, JobEvent] = {}
        self._wakeup = asyncio.Event()
        self._kv = buckets.state
        self._withdrawn_kv = buckets.withdrawn
        self._partitions = PartitionLeases(Leases(buckets.leases, settings.worker_id))
        owned = self._partitions.owned  # the live set, which the partition leases change in place
        self._timers = RetryTimers(
            buckets.timers,
            lambda r: publish_requested(js, self._names, r),
            owns=lambda key: int(key.split(".", 1)[0]) in owned,
        )
        # Up to when every occurrence of the partitions held has been published (the main loop's last look).
        self._watermark: datetime | None = None
        self._saved: dict[int, datetime] = {}
        # A partition's watermark is saved only once a look that began after taking it over has finished.
        self._looks_begun = 0
        self._looks_done = 0
        self._taken_at_look: dict[int, int] = {}
        # Executions published ahead of their fire time, by job: withdrawn if the job changes before then.
        self._ahead: dict[UUID, tuple[datetime, list[UUID]]] = {}
        self._background: set[asyncio.Task[None]] = set()

    @property
    def index(self) -> ScheduleIndex:
        return self._index

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self._partitions.owned)

    async def _watermark_of(self, partition: int) -> datetime | None:
        for key in (watermark_key(partition), WATERMARK_KEY):  # the single key of a store from before partitions
            try:
                entry = await self._kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                continue
            if entry.value:
                return msgspec.json.decode(entry.value, type=datetime)
        return None

    def _owns(self, job_id: UUID) -> bool:
        # Called for every job event: the live set, not the frozenset copy `owned` makes.
        return partition_of(job_id) in self._partitions.owned

    async def _follow_jobs(self, bootstrapped: asyncio.Event, done: asyncio.Event) -> None:
        js = self._js
        info = await js.stream_info(self._names.jobs_stream)
        if not info.state.messages:
            bootstrapped.set()
        reader = await OrderedReader().subscribe(
            js, self._names.jobs_filter, self._names.jobs_stream, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
        )
        try:
            while not done.is_set():
                for msg in await reader.batch(FOLLOW_BATCH, 1.0):
                    self._take_in(msg, bootstrapped)
                await asyncio.sleep(0)  # a full buffer returns at once: let the rest of the ticker run
        finally:
            await reader.close()

    def _take_in(self, msg: Msg, bootstrapped: asyncio.Event) -> None:
        try:
            event = decode_job_event(msg.data)
        except msgspec.ValidationError as exc:
            log.error("ignoring undecodable job message on %s: %s", msg.subject, exc)
            return
        known = self._catalog.get(event.job_id)
        if known is None or event.version > known.version:
            if isinstance(event, JobDeleted):
                self._catalog.pop(event.job_id, None)
            else:
                self._catalog[event.job_id] = event
        if event.job_id in self._ahead and _stops_firing(event):
            self._withdraw_ahead(event.job_id)
        # A live change fires from when it happened (partitions are taken over in _take, not here).
        if self._owns(event.job_id):
            self._index.apply(event, event.occurred_at)
            self._wakeup.set()
        if not bootstrapped.is_set() and msg.metadata.num_pending == 0:
            bootstrapped.set()
            log.info("ticker catalog built: %d jobs", len(self._catalog))

    def _withdraw_ahead(self, job_id: UUID) -> None:
        """The job changed before occurrences published ahead for it are due: withdraw them."""
        fire_at, execution_ids = self._ahead.pop(job_id)
        if fire_at <= self._clock():
            return
        task = asyncio.create_task(withdraw(self._withdrawn_kv, execution_ids))
        self._background.add(task)
        task.add_done_callback(self._withdrawn)

    def _withdrawn(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("could not withdraw executions published ahead; they may still be delivered: %s", exc)

    async def _take(self, partitions: frozenset[int]) -> None:
        """Start firing `partitions`: their jobs from each one's saved watermark on (what fell due since was
        missed while nobody looked, and goes through each job's misfire policy)."""
        by_partition: dict[int, list[JobEvent]] = {p: [] for p in partitions}
        for event in self._catalog.values():  # one pass over the catalog, however many partitions are taken
            if (p := partition_of(event.job_id)) in by_partition:
                by_partition[p].append(event)
        for partition in partitions:  # no watermark is saved for a partition until it is wholly taken in
            self._taken_at_look[partition] = sys.maxsize
        renewed = time.monotonic()
        for partition, events in by_partition.items():
            watermark = await self._watermark_of(partition)
            for n, event in enumerate(events, 1):
                if n % TAKE_SLICE == 0:
                    # A million jobs take a minute to index: let the loop run, and keep the leases meanwhile.
                    await asyncio.sleep(0)
                    if time.monotonic() - renewed > self._settings.lease_ttl_seconds / 3:
                        await self._partitions.renew_held()
                        renewed = time.monotonic()
                if self._catalog.get(event.job_id) is not event:
                    continue  # changed or deleted meanwhile: the follower has applied what came after
                if watermark is None:
                    self._index.apply(event, event.occurred_at)
                    continue
                # Published up to the watermark means nominal times up to it less the job's jitter.
                looked = watermark - timedelta(seconds=event.job.jitter_seconds)
                start_after = max(looked, event.occurred_at) if _changes_timing(event) else looked
                self._index.apply(event, start_after, catch_up_from=looked)
            # Saved only once a look that begins after this has finished.
            self._taken_at_look[partition] = self._looks_begun
        self._timers.owners_changed()
        self._wakeup.set()

    async def _rebalance(self) -> None:
        """One lease step: renew, take what is due to this ticker, hand back its surplus after saving it."""
        step = await self._partitions.step()
        if step.lost:
            dropped = self._index.drop_partitions(step.lost)
            log.warning(
                "lost the leases on partitions %s (%d jobs): another ticker fires them now", sorted(step.lost), dropped
            )
        if step.surplus:
            await self._save_watermarks(step.surplus)
            self._index.drop_partitions(step.surplus)
            await self._partitions.release(step.surplus)
            log.info("handed back partitions %s", sorted(step.surplus))
        PARTITIONS_HELD.set(len(self.owned))
        if step.gained:
            await self._take(step.gained)
            log.info("took partitions %s; firing %d of %d", sorted(step.gained), len(self.owned), PARTITIONS)

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        every = self._settings.lease_ttl_seconds / 3
        await periodically(self._rebalance, every, stop, what="renew partition leases", retry_on=BUS_ERRORS, log=log)

    async def _save_watermarks(self, partitions: frozenset[int]) -> None:
        """Save the watermark of each partition whose catch-up after being taken over is done."""
        wm = self._watermark
        if wm is None:
            return
        for partition in partitions:
            if self._saved.get(partition) == wm or self._looks_done <= self._taken_at_look.get(partition, -1):
                continue
            await self._kv.put(watermark_key(partition), msgspec.json.encode(wm))
            self._saved[partition] = wm

    async def _save_state(self) -> None:
        """Save the watermarks and the heartbeat, once there is a watermark (after the first look)."""
        wm = self._watermark
        if wm is None:
            return
        await self._save_watermarks(self.owned)
        beat = Heartbeat(instance=self._settings.worker_id, at=self._clock(), watermark=wm, jobs=len(self._index.jobs))
        await self._kv.put(HEARTBEAT_KEY, msgspec.json.encode(beat))

    async def _keep_state(self, stop: asyncio.Event) -> None:
        # A lagging watermark only widens the overlap deduplication absorbs after a restart: retry.
        await periodically(
            self._save_state,
            SAVE_INTERVAL_SECONDS,
            stop,
            what="save ticker state",
            retry_on=BUS_ERRORS,
            immediately=True,
            log=log,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Fire due occurrences until `stop` is set; watermarks are saved and leases handed back on the way out.

        Its loops (the job follower, the retry timers, the lease keeper, the state saver) run in one task group:
        one that fails or quits stops the ticker with its error."""
        # Here, not in its task: a cancel landing inside the watch's set-up blocks draining.
        watcher = await self._timers.watch()
        bootstrapped = asyncio.Event()
        # Set on the way out, for loops that a cancel alone may not end (see _follow_jobs).
        stopping = asyncio.Event()
        looked_until = self._clock()
        try:
            async with task_group() as tg:
                cancelled_on_exit = [  # the state saver is not: it finishes the save under way
                    tg.create_task(
                        until_stopped(lambda: self._follow_jobs(bootstrapped, stopping), stopping, "job follower")
                    ),
                    tg.create_task(
                        until_stopped(lambda: self._timers.run(watcher, stopping), stopping, "retry timers")
                    ),
                ]
                try:
                    await _first_of(bootstrapped.wait(), stop.wait())
                    if not stop.is_set():
                        await self._rebalance()  # alone, this takes every partition before the first look
                    tg.create_task(until_stopped(lambda: self._keep_state(stop), stop, "state saver"))
                    keeper = tg.create_task(until_stopped(lambda: self._keep_leases(stop), stop, "lease keeper"))
                    cancelled_on_exit.append(keeper)
                    await self._fire(stop, looked_until)
                finally:
                    stopping.set()
                    for task in cancelled_on_exit:
                        task.cancel()
        finally:
            if self._background:  # withdrawals under way
                await asyncio.gather(*self._background, return_exceptions=True)
            await self._save_watermarks(self.owned)
            await self._partitions.release_all()  # the others take these partitions at once, not at expiry

    async def _fire(self, stop: asyncio.Event, looked_until: datetime) -> None:
        """The main loop: publish what falls due (and record what was missed) until `stop` is set."""
        grace = timedelta(seconds=self._settings.misfire_grace_seconds)
        lead = timedelta(seconds=self._settings.fire_lead_seconds)
        while not stop.is_set():
            self._wakeup.clear()
            self._looks_begun += 1
            now = self._clock()
            horizon = now + lead
            if self._ahead:
                self._ahead = {job: a for job, a in self._ahead.items() if a[0] > now}
            due = self._index.pop_due(now, grace, looked_until, horizon)
            missed = self._index.take_missed()
            if missed:
                await record_missed(self._js, self._names, missed, self._clock())
            if due:
                await publish_due(self._js, self._names, due, self._clock, self._ahead)
            self._watermark = horizon  # published up to there
            self._looks_done = self._looks_begun
            # Not `now`: what fell due while publishing was late, not missed.
            looked_until = self._clock()
            nxt = self._index.next_due()
            delay = MAX_IDLE_SECONDS if nxt is None else (nxt - lead - self._clock()).total_seconds()
            if delay > 0:
                await _first_of(self._wakeup.wait(), stop.wait(), timeout=min(delay, MAX_IDLE_SECONDS))


_TIMING_FIELDS = frozenset({"schedule", "timezone", "enabled", "start_at", "end_at", "jitter_seconds"})


def _stops_firing(event: JobEvent) -> bool:
    """Whether occurrences published ahead under the job's previous state must not fire."""
    return isinstance(event, JobDeleted | JobPaused) or not event.job.enabled or _changes_timing(event)


def _changes_timing(event: JobEvent) -> bool:
    """Whether the job fires from this event's time on (created, resumed, rescheduled), rather than from whenever
    its partition was last looked at (an edit of its name or webhooks changes nothing about when it fires)."""
    if isinstance(event, JobCreated | JobResumed):
        return True
    return isinstance(event, JobUpdated) and bool(_TIMING_FIELDS & set(event.changed))


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


@contextlib.asynccontextmanager
async def open_ticker(settings: Settings, clock: Callable[[], datetime] = _now) -> AsyncIterator[Ticker]:
    """The ticker, connected to NATS with the streams checked and its buckets open; disconnected on exit."""
    nc = await connect(settings.nats_url, "ticker")
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        buckets = TickerBuckets(
            state=await ticker_bucket(js, settings),
            withdrawn=await withdrawn_bucket(js, settings),
            leases=await leases_bucket(js, settings),
            timers=await timers_bucket(js, settings),
        )
        yield Ticker(settings, js, buckets, clock)
    finally:
        await disconnect(nc)
