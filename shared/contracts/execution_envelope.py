"""What every event of the EXECUTIONS stream carries: the attempt it is about, the occurrence and the job."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

# Version 2 of the execution events: a webhook attempt's ExecutionStarted is published only when the attempt is
# still running after SCHEDULER_STARTED_EVENT_AFTER_SECONDS (the result carries started_at and worker_id either
# way). Version 1 events (every attempt started, then its result) are read the same way.
EXECUTION_SCHEMA_VERSION = 2


class ExecutionEnvelope(msgspec.Struct, frozen=True, kw_only=True, tag_field="event_type"):
    """Envelope shared by execution events (tagged by class name in `event_type`)."""

    schema_version: int = EXECUTION_SCHEMA_VERSION
    execution_id: UUID
    occurrence_id: str
    job_id: UUID
    account_id: UUID
    attempt: int = 1
    occurred_at: datetime
