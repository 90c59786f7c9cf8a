"""What the ticker reads of a job event: its timing, not the whole job.

The same JOBS stream messages as `shared.contracts.jobs`, decoded into fewer fields: a ticker indexes every job of its
partitions but needs the whole job (webhooks, body, headers) only when an occurrence is published, so it decodes
this view for its index (quicker, and nothing else is kept) and reads the whole job shortly before it fires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

from shared.contracts.jobs import MisfirePolicy
from shared.contracts.schedules import Exclusions, Schedule

JobEventType = Literal[
    "JobCreated",
    "JobUpdated",
    "JobPaused",
    "JobResumed",
    "JobDeleted",
    "WebhookAdded",
    "WebhookUpdated",
    "WebhookRemoved",
    "WebhookDisabled",
]


class JobTiming(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The fields of a job's state that decide when it fires (JobState's, same names and defaults)."""

    id: UUID
    account_id: UUID
    schedule: Schedule
    timezone: str = "UTC"
    enabled: bool = True
    misfire: MisfirePolicy = msgspec.field(default_factory=MisfirePolicy)
    start_at: datetime | None = None
    end_at: datetime | None = None
    jitter_seconds: float = 0.0
    exclusions: Exclusions | None = None


class JobTimingEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A job event's envelope with the job's timing. `changed`: the fields a JobUpdated changed (a WebhookUpdated's
    `changed` names webhook fields, which change nothing about timing)."""

    event_type: JobEventType
    job_id: UUID
    version: int
    occurred_at: datetime
    job: JobTiming
    changed: tuple[str, ...] = ()

    @property
    def deleted(self) -> bool:
        return self.event_type == "JobDeleted"
