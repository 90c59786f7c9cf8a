"""The ticker service: builds its index from job events and publishes one ExecutionRequested per occurrence."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from services.ticker.index_snapshots import (
    PartitionSnapshot,
    read_snapshot,
    snapshot_store,
    stale,
    usable,
    write_snapshot,
)
from services.ticker.job_feed import PartitionFeed
from services.ticker.job_states import missed_with_state, read_jobs, with_state
from services.ticker.partitions import PartitionLeases
from services.ticker.publishing import publish_due, record_missed
from services.ticker.retry_timers import RetryTimers
from services.ticker.schedule_index import (
    DueOccurrence,
    IndexedJob,
    MissedOccurrence,
    ScheduleIndex,
)
from shared.bus.connection import BUS_ERRORS, connect, disconnect
from shared.bus.executions import publish_timed
from shared.bus.leases import Leases, leases_bucket
from shared.bus.streams import ensure_streams, ticker_bucket, timers_bucket
from shared.bus.withdrawals import withdraw, withdrawn_bucket
from shared.contracts.codec import decode_job_event
from shared.contracts.job_timing import JobTimingEvent
from shared.contracts.jobs import JobDeleted, JobState
from shared.contracts.subjects import PARTITIONS, Names, partition_of
from shared.contracts.ticker import HEARTBEAT_KEY, WATERMARK_KEY, Heartbeat, watermark_key
from shared.observability.metrics import JOBS_INDEXED, PARTITION_READS, PARTITIONS_HELD, PARTITIONS_INDEXED
from shared.runtime.periodic import periodically
from shared.runtime.tasks import task_group, until_stopped
from shared.settings import Settings

log = logging.getLogger(__name__)

SAVE_INTERVAL_SECONDS = 1.0
# A partition that published nothing since its watermark was last saved has that watermark saved again only once it
# is this old: a new owner looking from the older one finds nothing due in between (nothing was published there), so
# the save changes nothing but the length of that look. Idle partitions were 30 of an idle ticker's puts a second.
IDLE_WATERMARK_SAVE_SECONDS = 60.0
MAX_IDLE_SECONDS = 1.0
TAKE_SLICE = 2000
PARTITIONS_READ_AT_ONCE = 2
RETRY_LOAD_SECONDS = 1.0
# For this long after a ticker starts (the replicas of a deployment start within seconds of each other) and after a
# lease step that moved the sharing of partitions (services/ticker/partitions.py), lease steps come every
# UNSETTLED_STEP_SECONDS instead of three times per lease TTL.
SETTLING_SECONDS = 5.0
UNSETTLED_STEP_SECONDS = 0.5


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TickerBuckets:
    """The KV buckets the ticker works with."""

    state: KeyValue  # watermarks and the heartbeat
    withdrawn: KeyValue  # executions published ahead and withdrawn since
    leases: KeyValue
    timers: KeyValue  # attempts due later
    snapshots: ObjectStore  # each partition's jobs, read by the next ticker to take it


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
        # The feed of each partition held, and the partitions whose jobs are indexed: a partition is read from the
        # stream when taken, and forgotten when given up.
        self._feeds: dict[int, asyncio.Task[None]] = {}
        self._indexed: set[int] = set()
        self._feed_failed: BaseException | None = None
        self._loading = asyncio.Semaphore(PARTITIONS_READ_AT_ONCE)
        PARTITIONS_INDEXED.set_function(lambda: len(self._indexed))
        JOBS_INDEXED.set_function(lambda: len(self._index.jobs))
        self._wakeup = asyncio.Event()
        self._kv = buckets.state
        self._withdrawn_kv = buckets.withdrawn
        self._snapshots = buckets.snapshots
        self._partitions = PartitionLeases(Leases(buckets.leases, settings.worker_id))
        self._settling_until = 0.0  # loop time
        owned = self._partitions.owned  # the live set, which the partition leases change in place
        self._timers = RetryTimers(
            buckets.timers,
            lambda r: publish_timed(js, self._names, r),
            owns=lambda key: int(key.split(".", 1)[0]) in owned,
        )
        # Up to when every occurrence of the partitions held has been published (the main loop's last look).
        self._watermark: datetime | None = None
        self._saved: dict[int, datetime] = {}
        # By partition, the number of the last look that published (or recorded missed) anything of it, and the
        # number of the look whose watermark was saved last: a partition is saved each second only while it fires.
        self._fired_at_look: dict[int, int] = {}
        self._saved_at_look: dict[int, int] = {}
        # A partition's watermark is saved only once a look that began after taking it over has finished.
        self._looks_begun = 0
        self._looks_done = 0
        self._taken_at_look: dict[int, int] = {}
        # Executions published ahead of their fire time, by job: withdrawn if the job changes before then.
        self._ahead: dict[UUID, tuple[datetime, list[UUID]]] = {}
        self._background: set[asyncio.Task[None]] = set()
        # Reads of the whole jobs due soon that the index does not hold.
        self._reads: set[asyncio.Task[None]] = set()
        # Snapshots being written: dropped when the ticker stops (the next reader reads the stream instead).
        self._writes: set[asyncio.Task[None]] = set()

    @property
    def index(self) -> ScheduleIndex:
        return self._index

    @property
    def watermark(self) -> datetime | None:
        """Up to when every occurrence of the partitions held has been published (None before the first look)."""
        return self._watermark

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

    def _start_feeds(self, partitions: frozenset[int]) -> None:
        """Read the jobs of each of `partitions` (taken just now), index them, then follow their changes."""
        for partition in sorted(partitions):
            self._taken_at_look[partition] = sys.maxsize  # no watermark is saved until it is wholly taken in
            task = asyncio.create_task(self._feed(partition))
            self._feeds[partition] = task
            task.add_done_callback(functools.partial(self._feed_ended, partition))

    def _feed_ended(self, partition: int, task: asyncio.Task[None]) -> None:
        if self._feeds.get(partition) is task:
            del self._feeds[partition]
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._feed_failed = exc  # the main loop raises it: the ticker stops with the feed's error
            self._wakeup.set()

    def _reading(self, partition: int) -> bool:
        """Whether this task is still the partition's feed. Checked as well as cancellation: Python 3.11's wait_for
        (inside nats-py's requests) can swallow a cancel that arrives as its answer does, and the feed would then
        read on after being dropped or stopped."""
        return self._feeds.get(partition) is asyncio.current_task()

    async def _feed(self, partition: int) -> None:
        feed = await self._loaded(partition)
        if feed is None:
            return
        try:
            while self._reading(partition):
                for event, data in await feed.next_events():
                    self._take_in(event, data)
                await asyncio.sleep(0)  # a full buffer returns at once: let the rest of the ticker run
        finally:
            await feed.close()

    async def _loaded(self, partition: int) -> PartitionFeed | None:
        """The partition's feed, once its jobs are read and indexed. A few partitions are read at a time: each
        consumer makes the server look through the stream's subjects (seconds at a million jobs), and 32 read at
        once kept the server and this loop too busy to renew the leases in time. A bus error (a timeout while the
        server is busy) starts the partition over, rather than ending the ticker."""
        while self._reading(partition):
            async with self._loading:
                feed: PartitionFeed | None = None
                try:
                    feed, latest = await self._read(partition)
                    await self._take(partition, latest)
                    return feed
                except BUS_ERRORS as exc:
                    log.warning("reading partition %d failed, starting it over: %s", partition, exc)
                    if feed is not None:
                        await feed.close()
                except BaseException:  # given up (cancelled) while it was read: its consumer goes too
                    if feed is not None:
                        await feed.close()
                    raise
            await asyncio.sleep(RETRY_LOAD_SECONDS)
        return None

    async def _read(self, partition: int) -> tuple[PartitionFeed, dict[UUID, JobTimingEvent]]:
        """The partition's feed and its live jobs' latest events: from its snapshot and the events after it when
        there is one to use, else from the stream; a snapshot is written (in the background) when there was none or
        the events after it were many."""
        snapshot = await read_snapshot(self._snapshots, partition)
        if snapshot is not None:  # the stream is asked only when there is a snapshot to check against it
            last = (await self._js.stream_info(self._names.jobs_stream)).state.last_seq
            snapshot = snapshot if usable(snapshot, last) else None
        after = None if snapshot is None else snapshot.sequence
        feed = await PartitionFeed.open(self._js, self._names, partition, after)
        try:
            latest = await feed.load(None if snapshot is None else {e.job_id: e for e in snapshot.jobs})
        except BaseException:
            await feed.close()
            raise
        PARTITION_READS.labels("stream" if snapshot is None else "snapshot").inc()
        if snapshot is None or stale(len(snapshot.jobs), feed.read):
            fresh = PartitionSnapshot(partition=partition, sequence=feed.loaded_through, jobs=list(latest.values()))
            task = asyncio.create_task(write_snapshot(self._snapshots, fresh))
            self._writes.add(task)
            task.add_done_callback(self._snapshot_written)
        return feed, latest

    def _snapshot_written(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("could not write a partition snapshot; the next ticker reads the stream: %s", exc)

    def _drop(self, partitions: frozenset[int]) -> int:
        """Forget the jobs of partitions given up or lost, and stop reading them."""
        self._indexed -= partitions
        for partition in partitions:
            if (task := self._feeds.pop(partition, None)) is not None:
                task.cancel()
        return self._index.drop_partitions(partitions)

    async def _stop_feeds(self) -> None:
        feeds = list(self._feeds.values())
        self._feeds.clear()
        for task in feeds:
            task.cancel()
        await asyncio.gather(*feeds, return_exceptions=True)

    def _take_in(self, event: JobTimingEvent, data: bytes) -> None:
        """A job event that came after its partition was indexed (`data`: its message, the whole job)."""
        if event.job_id in self._ahead and _stops_firing(event):
            self._withdraw_ahead(event.job_id)
        # A live change fires from when it happened. A partition still being read takes its events in its _take.
        if partition_of(event.job_id) in self._indexed:
            self._index.apply(event, event.occurred_at, whole=functools.partial(_whole_job, data))
            self._wakeup.set()

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

    async def _take(self, partition: int, latest: dict[UUID, JobTimingEvent]) -> None:
        """Start firing `partition`, whose jobs' latest events are `latest`: from its saved watermark on (what fell
        due since was missed while nobody looked, and goes through each job's misfire policy)."""
        watermark = await self._watermark_of(partition)
        looked_by_jitter: dict[float, datetime] = {}  # one datetime for the many jobs with the same jitter
        for n, event in enumerate(latest.values(), 1):
            if n % TAKE_SLICE == 0:
                await asyncio.sleep(0)  # a partition of a large store takes a while to index: let the loop run
            if watermark is None:
                self._index.apply(event, event.occurred_at)
                continue
            # Published up to the watermark means nominal times up to it less the job's jitter.
            jitter = event.job.jitter_seconds
            if (looked := looked_by_jitter.get(jitter)) is None:
                looked = looked_by_jitter[jitter] = watermark - timedelta(seconds=jitter)
            start_after = max(looked, event.occurred_at) if _changes_timing(event) else looked
            self._index.apply(event, start_after, catch_up_from=looked)
        if partition not in self._partitions.owned:  # given up while it was indexed
            self._index.drop_partitions(frozenset({partition}))
            return
        # Saved only once a look that begins after this has finished, and then at once (fired or not).
        self._taken_at_look[partition] = self._looks_begun
        self._saved.pop(partition, None)
        self._indexed.add(partition)
        self._timers.owners_changed()
        self._wakeup.set()
        if len(self._indexed) == len(self._partitions.owned):
            log.info("every partition held is indexed: %d jobs", len(self._index.jobs))

    def _read_ahead(self, jobs: list[IndexedJob]) -> None:
        """Read the whole jobs of `jobs`, due within STATE_FETCHED_AHEAD, in the background; one not read by the
        time it fires is read then (`_with_states`)."""
        task = asyncio.create_task(self._give_states(jobs))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _give_states(self, jobs: list[IndexedJob]) -> None:
        try:
            latest = await read_jobs(self._js, self._names, jobs)
        except BUS_ERRORS as exc:
            log.warning("could not read %d jobs due soon; they are read when they fire: %s", len(jobs), exc)
            return
        for event in latest.values():
            if not isinstance(event, JobDeleted):
                self._index.give_state(event.job, event.version)

    async def _with_states(
        self, due: list[DueOccurrence], missed: list[MissedOccurrence]
    ) -> tuple[list[DueOccurrence], list[MissedOccurrence]]:
        """`due` and `missed` with their whole jobs read where the index did not hold them; an occurrence whose job
        no longer fires it (deleted, paused or rescheduled since it was indexed) is dropped, as if published ahead
        and withdrawn. A read that fails raises, as a publish that fails does: nothing popped is lost, since the
        watermark stays where it was."""
        jobs = {o.job.id: o.job for o in due if o.state is None} | {m.job.id: m.job for m in missed if m.state is None}
        latest = await read_jobs(self._js, self._names, list(jobs.values()))
        ready = [o for d in due if (o := with_state(d, latest.get(d.job.id))) is not None]
        recorded = [r for m in missed if (r := missed_with_state(m, latest.get(m.job.id))) is not None]
        if len(ready) < len(due) or len(recorded) < len(missed):
            log.info(
                "%d occurrences not published, %d missed not recorded: their jobs changed since they were indexed",
                len(due) - len(ready),
                len(missed) - len(recorded),
            )
        return ready, recorded

    async def _rebalance(self) -> None:
        """One lease step: renew, take what is due to this ticker, hand back its surplus after saving it."""
        step = await self._partitions.step()
        if step.unsettled:
            self._settling_until = asyncio.get_running_loop().time() + SETTLING_SECONDS
        if step.lost:
            dropped = self._drop(step.lost)
            log.warning(
                "lost the leases on partitions %s (%d jobs): another ticker fires them now", sorted(step.lost), dropped
            )
        if step.surplus:
            await self._save_watermarks(step.surplus, idle_too=True)
            await self._partitions.release(step.surplus)
            self._drop(step.surplus)
            log.info("handed back partitions %s", sorted(step.surplus))
        PARTITIONS_HELD.set(len(self.owned))
        if step.gained:
            self._start_feeds(step.gained)
            log.info("took partitions %s; holding %d of %d", sorted(step.gained), len(self.owned), PARTITIONS)

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        settled_every = self._settings.lease_ttl_seconds / 3
        self._settling_until = max(self._settling_until, loop.time() + SETTLING_SECONDS)

        def every() -> float:
            return min(UNSETTLED_STEP_SECONDS, settled_every) if loop.time() < self._settling_until else settled_every

        await periodically(self._rebalance, every, stop, what="renew partition leases", retry_on=BUS_ERRORS, log=log)

    async def _save_watermarks(self, partitions: frozenset[int], *, idle_too: bool = False) -> None:
        """Save the watermark of each partition whose catch-up after being taken over is done and that fired since
        its last save (see IDLE_WATERMARK_SAVE_SECONDS); `idle_too`: every one (handed back or stopping)."""
        wm = self._watermark
        if wm is None:
            return
        looks_done = self._looks_done
        for partition in partitions:
            saved = self._saved.get(partition)
            if saved == wm or looks_done <= self._taken_at_look.get(partition, -1):
                continue
            fired = self._fired_at_look.get(partition, 0) > self._saved_at_look.get(partition, -1)
            stale = saved is None or (wm - saved).total_seconds() >= IDLE_WATERMARK_SAVE_SECONDS
            if not (fired or stale or idle_too):
                continue
            await self._kv.put(watermark_key(partition), msgspec.json.encode(wm))
            self._saved[partition] = wm
            self._saved_at_look[partition] = looks_done

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

        Its loops (the retry timers, the lease keeper, the state saver) run in one task group: one that fails or
        quits stops the ticker with its error, as does a partition's feed (raised by the main loop)."""
        # Here, not in its task: a cancel landing inside the watch's set-up blocks draining.
        watcher = await self._timers.watch()
        # Set on the way out, for loops that a cancel alone may not end.
        stopping = asyncio.Event()
        looked_until = self._clock()
        try:
            async with task_group() as tg:
                cancelled_on_exit = [  # the state saver is not: it finishes the save under way
                    tg.create_task(
                        until_stopped(lambda: self._timers.run(watcher, stopping), stopping, "retry timers")
                    ),
                ]
                try:
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
            await self._stop_feeds()
            for task in (*self._reads, *self._writes):
                task.cancel()
            if self._background:  # withdrawals under way
                await asyncio.gather(*self._background, return_exceptions=True)
            try:
                await self._save_watermarks(self.owned, idle_too=True)
            except BUS_ERRORS as exc:
                # Stopping during a fault of the bus (a stream without a leader) must not fail the ticker: the next
                # owner looks from the last watermark saved, and what it publishes again is dropped as a repeat.
                log.warning("could not save the watermarks on the way out; the next owner repeats a little: %s", exc)
            await self._partitions.release_all()  # the others take these partitions at once, not at expiry

    async def _fire(self, stop: asyncio.Event, looked_until: datetime) -> None:
        """The main loop: publish what falls due (and record what was missed) until `stop` is set."""
        grace = timedelta(seconds=self._settings.misfire_grace_seconds)
        lead = timedelta(seconds=self._settings.fire_lead_seconds)
        while not stop.is_set():
            if self._feed_failed is not None:
                raise self._feed_failed
            self._wakeup.clear()
            self._looks_begun += 1
            now = self._clock()
            horizon = now + lead
            if self._ahead:
                self._ahead = {job: a for job, a in self._ahead.items() if a[0] > now}
            if soon := self._index.promote(now + self._index.fetched_ahead):
                self._read_ahead(soon)
            due = self._index.pop_due(now, grace, looked_until, horizon)
            missed = self._index.take_missed()
            if any(o.state is None for o in due) or any(m.state is None for m in missed):
                due, missed = await self._with_states(due, missed)
            for job_id in {o.job.id for o in due} | {m.job.id for m in missed}:
                self._fired_at_look[partition_of(job_id)] = self._looks_begun
            if missed:
                await record_missed(self._js, self._names, missed, self._clock())
            if due:
                await publish_due(self._js, self._names, due, self._clock, self._ahead)
            self._watermark = horizon  # published up to there
            self._looks_done = self._looks_begun
            # Not `now`: what fell due while publishing was late, not missed.
            looked_until = self._clock()
            moments = [] if (nxt := self._index.next_due()) is None else [nxt - lead]
            if (fetch := self._index.next_fetch()) is not None:
                moments.append(fetch)
            delay = MAX_IDLE_SECONDS if not moments else (min(moments) - self._clock()).total_seconds()
            if delay > 0:
                await _first_of(self._wakeup.wait(), stop.wait(), timeout=min(delay, MAX_IDLE_SECONDS))


_TIMING_FIELDS = frozenset({"schedule", "timezone", "enabled", "start_at", "end_at", "jitter_seconds"})


def _stops_firing(event: JobTimingEvent) -> bool:
    """Whether occurrences published ahead under the job's previous state must not fire."""
    return event.event_type in ("JobDeleted", "JobPaused") or not event.job.enabled or _changes_timing(event)


def _changes_timing(event: JobTimingEvent) -> bool:
    """Whether the job fires from this event's time on (created, resumed, rescheduled), rather than from whenever
    its partition was last looked at (an edit of its name or webhooks changes nothing about when it fires)."""
    if event.event_type in ("JobCreated", "JobResumed"):
        return True
    return event.event_type == "JobUpdated" and bool(_TIMING_FIELDS & set(event.changed))


def _whole_job(data: bytes) -> JobState:
    return decode_job_event(data).job


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
            snapshots=await snapshot_store(js, settings),
        )
        yield Ticker(settings, js, buckets, clock)
    finally:
        await disconnect(nc)
