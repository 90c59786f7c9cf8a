"""Snapshots of a partition's jobs, so a ticker taking a partition reads one object and the events since, not every
job's latest event one message at a time.

A ticker that read a partition from the JOBS stream (every job's latest event) saves what it read, each job's timing
view and the stream sequence it is complete up to, as one object in the `<ns>_ticker_index` object store. The next
ticker to take the partition reads that object and then only the partition's events after that sequence. Snapshots
are derived data: one that is missing, unreadable, of another format or from a stream since recreated is ignored
(and the partition read from the stream as before), and deleting the bucket only makes the next start-up slower.
A snapshot is written again when the events read after it outnumber a quarter of its jobs.
"""

from __future__ import annotations

import io
import logging

import msgspec
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from shared.contracts.job_timing import JobTimingEvent
from shared.contracts.subjects import Names
from shared.settings import Settings

log = logging.getLogger(__name__)

FORMAT = 1
# A snapshot is written again once the events read after it are more than this share of its jobs (or than the floor).
STALE_SHARE = 0.25
STALE_FLOOR = 1000


class PartitionSnapshot(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Every live job of `partition` (its latest event's timing view), complete up to JOBS stream `sequence`."""

    format: int = FORMAT
    partition: int
    sequence: int
    jobs: list[JobTimingEvent]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(PartitionSnapshot)


def _name(partition: int) -> str:
    return f"partition.{partition}"


async def snapshot_store(js: JetStreamContext, settings: Settings) -> ObjectStore:
    """The object store of partition snapshots, created if missing."""
    bucket = Names(settings.namespace).index_bucket
    try:
        return await js.object_store(bucket)
    except BucketNotFoundError:
        return await js.create_object_store(
            bucket, ObjectStoreConfig(storage=StorageType.FILE, replicas=settings.stream_replicas)
        )


async def read_snapshot(store: ObjectStore, partition: int) -> PartitionSnapshot | None:
    """The partition's snapshot, if there is one of this format and this partition (`usable` checks it against the
    stream)."""
    buffer = io.BytesIO()
    try:
        await store.get(_name(partition), writeinto=buffer)
    except NotFoundError:
        return None
    try:
        snapshot = _decoder.decode(buffer.getvalue())
    except msgspec.DecodeError as exc:
        log.warning("ignoring the unreadable snapshot of partition %d: %s", partition, exc)
        return None
    if snapshot.format != FORMAT or snapshot.partition != partition:
        log.warning("ignoring the snapshot of partition %d: of another format or partition", partition)
        return None
    return snapshot


def usable(snapshot: PartitionSnapshot, last_sequence: int) -> bool:
    """Whether the snapshot belongs to the stream whose last sequence is `last_sequence` (not to one since
    recreated, whose sequences start again)."""
    if snapshot.sequence > last_sequence:
        log.warning("ignoring the snapshot of partition %d: of a stream since recreated", snapshot.partition)
        return False
    return True


async def write_snapshot(store: ObjectStore, snapshot: PartitionSnapshot) -> None:
    await store.put(_name(snapshot.partition), _encoder.encode(snapshot))


def stale(snapshot_jobs: int, read_after: int) -> bool:
    """Whether a snapshot of `snapshot_jobs` jobs followed by `read_after` events should be written again."""
    return read_after > max(STALE_FLOOR, STALE_SHARE * snapshot_jobs)
