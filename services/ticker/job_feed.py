"""A ticker's job events, read only for the partitions it takes: every job's latest event first (the load), then
each new event as it comes (the follow).

One feed per partition (a consumer filtered to the partition's subjects), so a ticker reads and holds its own share
of the jobs and nothing else: N tickers split the reading and the memory N ways, a partition given up stops being
read at once, and a partition is served as soon as its own jobs are in, while the others are still being read.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.bus.ordered_reader import OrderedReader
from shared.contracts.codec import decode_job_timing
from shared.contracts.job_timing import JobTimingEvent
from shared.contracts.subjects import Names

log = logging.getLogger(__name__)

FOLLOW_BATCH = 1000
# Messages a partition's feed holds ahead of the ticker: 32 partitions read at once hold at most 32 times this.
FEED_BUFFER = 1000


class PartitionFeed:
    def __init__(self, partition: int, reader: OrderedReader, after: int) -> None:
        self.partition = partition
        self._reader = reader
        # The stream sequence up to which the partition's events have been loaded.
        self.loaded_through = after
        # How many messages the load read.
        self.read = 0

    @classmethod
    async def open(cls, js: JetStreamContext, names: Names, partition: int, after: int | None = None) -> PartitionFeed:
        """The partition's feed: from each job's latest event, or (`after`) from the events after that stream
        sequence only (a snapshot holds the rest)."""
        if after is None:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
        reader = await OrderedReader(FEED_BUFFER).subscribe(
            js, names.partition_filter(partition), names.jobs_stream, config=config
        )
        return cls(partition, reader, after or 0)

    async def load(self, snapshot: dict[UUID, JobTimingEvent] | None = None) -> dict[UUID, JobTimingEvent]:
        """Every live job's latest event in the partition (its timing view), with whatever came while it was read;
        `snapshot`: what a snapshot holds, the events read updating it."""
        latest: dict[UUID, JobTimingEvent] = snapshot if snapshot is not None else {}
        remaining = self._reader.pending_at_start
        while remaining > 0:
            batch = await self._reader.batch(FOLLOW_BATCH, 1.0)
            if batch:
                metadata = batch[-1].metadata
                remaining = metadata.num_pending or 0
                self.loaded_through = metadata.sequence.stream
                self.read += len(batch)
            for msg in batch:
                event = _decoded(msg)
                if event is not None and ((known := latest.get(event.job_id)) is None or event.version > known.version):
                    latest[event.job_id] = event
            await asyncio.sleep(0)  # a full buffer returns at once: let the rest of the ticker run
        return {job_id: event for job_id, event in latest.items() if not event.deleted}

    async def next_events(self) -> list[tuple[JobTimingEvent, bytes]]:
        """The events that have come since the last call (waits up to a second for one), each with its message's
        data (the whole job, decoded if the job is due soon)."""
        return [
            (e, msg.data) for msg in await self._reader.batch(FOLLOW_BATCH, 1.0) if (e := _decoded(msg)) is not None
        ]

    async def close(self) -> None:
        await self._reader.close()


def _decoded(msg: Msg) -> JobTimingEvent | None:
    try:
        return decode_job_timing(msg.data)
    except msgspec.ValidationError as exc:
        log.error("ignoring undecodable job message on %s: %s", msg.subject, exc)
        return None
