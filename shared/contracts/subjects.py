"""Names of streams, subjects, consumers and buckets, all under one namespace.

JOBS subjects:       <ns>.jobs.<partition>.<account_id>.<job_id>     (one subject per job: its event log)
EXECUTIONS subjects: <ns>.executions.<kind>.<account_id>.<job_id>   (kind: requested, started, succeeded, failed)
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

    @property
    def executions_filter(self) -> str:
        return f"{self.namespace}.executions.>"

    @property
    def requested_filter(self) -> str:
        return f"{self.namespace}.executions.requested.>"

    @property
    def dispatcher_consumer(self) -> str:
        return f"{self.namespace}_dispatcher"

    @property
    def ticker_bucket(self) -> str:
        return f"{self.namespace}_ticker"

    @property
    def projection_channel(self) -> str:
        return f"{self.namespace}_projection"

    def job_subject(self, account_id: UUID, job_id: UUID) -> str:
        return f"{self.namespace}.jobs.{partition_of(job_id)}.{account_id}.{job_id}"

    def job_lookup_subject(self, job_id: UUID) -> str:
        return f"{self.namespace}.jobs.{partition_of(job_id)}.*.{job_id}"

    def execution_subject(self, kind: str, account_id: UUID, job_id: UUID) -> str:
        return f"{self.namespace}.executions.{kind}.{account_id}.{job_id}"
