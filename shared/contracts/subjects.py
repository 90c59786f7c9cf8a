"""Names of streams, subjects, consumers and buckets, all under one namespace.

JOBS subjects:       <ns>.jobs.<partition>.<account_id>.<job_id>     (one subject per job: its event log)
EXECUTIONS subjects: <ns>.executions.<kind>.<account_id>.<job_id>
    (kind: requested, started, succeeded, failed, timed_out, retry_scheduled, dead_lettered, webhook_disabled,
    missed, skipped, waiting, callback, callback_delivered, callback_failed)
PARTITIONS is part of the subject layout and fixed for the life of a store.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from uuid import UUID

PARTITIONS = 32


def partition_of(job_id: UUID) -> int:
    """Stable partition of a job (crc32 of its id)."""
    return zlib.crc32(job_id.bytes) % PARTITIONS


@dataclass(frozen=True, slots=True)
class Names:
    """Every bus and database name derived from one namespace."""

    namespace: str

    @property
    def jobs_stream(self) -> str:
        return f"{self.namespace.upper()}_JOBS"

    @property
    def executions_stream(self) -> str:
        return f"{self.namespace.upper()}_EXECUTIONS"

    @property
    def jobs_filter(self) -> str:
        return f"{self.namespace}.jobs.>"

    def partition_filter(self, partition: int) -> str:
        """Every job subject of one partition."""
        return f"{self.namespace}.jobs.{partition}.>"

    @property
    def executions_filter(self) -> str:
        return f"{self.namespace}.executions.>"

    @property
    def requested_filter(self) -> str:
        return f"{self.namespace}.executions.requested.>"

    @property
    def callback_filter(self) -> str:
        """Callbacks to send (CallbackRequested), which the dispatchers' callback consumer takes."""
        return f"{self.namespace}.executions.callback.>"

    @property
    def callback_consumer(self) -> str:
        return f"{self.namespace}_callbacks"

    @property
    def waiting_filter(self) -> str:
        """Deliveries waiting for their flow-control key (ExecutionWaiting), which the waiting consumer takes."""
        return f"{self.namespace}.executions.waiting.>"

    @property
    def waiting_consumer(self) -> str:
        return f"{self.namespace}_waiting"

    @property
    def flow_bucket(self) -> str:
        """Flow control's shared state: per account and key, the deliveries in flight and the rate window."""
        return f"{self.namespace}_flow"

    @property
    def tasks_stream(self) -> str:
        return f"{self.namespace.upper()}_TASKS"

    @property
    def tasks_filter(self) -> str:
        return f"{self.namespace}.tasks.>"

    def task_subject(self, task_name: str) -> str:
        """Task names are dot-separated tokens, so they map onto subjects as they are."""
        return f"{self.namespace}.tasks.{task_name}"

    def task_consumer(self, task_name: str) -> str:
        """The durable consumer all workers of one task share (consumer names cannot hold dots)."""
        return f"{self.namespace}_task_{task_name.replace('.', '_')}_{zlib.crc32(task_name.encode()):08x}"

    @property
    def dispatcher_consumer(self) -> str:
        return f"{self.namespace}_dispatcher"

    @property
    def ticker_bucket(self) -> str:
        return f"{self.namespace}_ticker"

    @property
    def index_bucket(self) -> str:
        """Tickers' snapshots of each partition's jobs (an object store): derived, safe to delete."""
        return f"{self.namespace}_ticker_index"

    @property
    def signing_bucket(self) -> str:
        return f"{self.namespace}_signing"

    @property
    def timers_bucket(self) -> str:
        return f"{self.namespace}_timers"

    @property
    def leases_bucket(self) -> str:
        """Leases: ticker partitions, the active projector of each stream, and who is alive to share them."""
        return f"{self.namespace}_leases"

    @property
    def running_bucket(self) -> str:
        """Runs in flight of jobs with an overlap policy, one key per job target."""
        return f"{self.namespace}_running"

    @property
    def withdrawn_bucket(self) -> str:
        """Executions published ahead of their fire time and withdrawn since (their job paused, deleted or
        rescheduled): one key per execution id."""
        return f"{self.namespace}_withdrawn"

    def timer_key(self, job_id: UUID, name: UUID | str) -> str:
        """Timers are keyed by partition first, so a ticker can watch only the partitions it owns (`name`: see
        shared.contracts.timers.timer_name)."""
        return f"{partition_of(job_id)}.{name}"

    @property
    def projection_channel(self) -> str:
        return f"{self.namespace}_projection"

    def job_subject(self, account_id: UUID, job_id: UUID) -> str:
        return f"{self.namespace}.jobs.{partition_of(job_id)}.{account_id}.{job_id}"

    def job_lookup_subject(self, job_id: UUID) -> str:
        return f"{self.namespace}.jobs.{partition_of(job_id)}.*.{job_id}"

    def execution_subject(self, kind: str, account_id: UUID, job_id: UUID) -> str:
        return f"{self.namespace}.executions.{kind}.{account_id}.{job_id}"
