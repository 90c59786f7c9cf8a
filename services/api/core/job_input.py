"""A job as the flat fields the job-editing surfaces share (the NEXUS document and the dashboard's form both describe
a job so): a schedule by the field of its kind, a retry policy as a count, a delay and a yes/no backoff, a task by its
name and arguments. Each surface maps its own request to a JobInput; job_mapping.py makes a new job or the changes
to a job of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from services.api.core.fields import (
    CalendarInput,
    Delay,
    ExclusionsBody,
    FlowControlBody,
    JitterSeconds,
    JobKind,
    MisfirePolicyBody,
    Name,
    Overlap,
    Priority,
    Retries,
    Seconds,
    ShortText,
    Tags,
    Text,
    TimeZone,
    Url,
)

# The field that carries each kind of schedule. The messages of job_mapping.py name fields as this input does.
SCHEDULE_FIELDS: dict[str, str] = {
    "cron": "cron_expression",
    "interval": "interval_seconds",
    "date": "scheduled_time",
    "calendar": "calendar_rule",
}
# This input's name for the neutral fields the core's errors name that it names otherwise (see input_field).
_INPUT_NAMES = {"task": "task_name", "anchor": "start_time", "arguments": "task_args"}


def input_field(field: str | None, schedule_kind: str | None = None) -> str | None:
    """This input's name for a field an error names: a schedule by the field of its kind, the task by its name; the
    surfaces that read their requests into this input (NEXUS, the dashboard's form) start from it."""
    if field == "schedule" and schedule_kind in SCHEDULE_FIELDS:
        return SCHEDULE_FIELDS[schedule_kind]
    return None if field is None else _INPUT_NAMES.get(field, field)


class JobInput(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A job's fields as given; UNSET: not given (a new job takes the default, a change leaves the field as it is).

    `start_time` is when an interval's runs are counted from; a time without an offset (it and `scheduled_time`) is
    wall-clock time in the job's time zone. `retry_backoff`: a growing (True) or fixed (False) delay between
    retries. The bounds are the fields' own, so a surface may read its request into this type and get them checked.
    """

    name: Name | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    kind: JobKind | UnsetType = UNSET
    cron_expression: ShortText | UnsetType | None = UNSET
    interval_seconds: Seconds | UnsetType | None = UNSET
    start_time: datetime | UnsetType | None = UNSET
    scheduled_time: datetime | UnsetType | None = UNSET
    calendar_rule: CalendarInput | UnsetType | None = UNSET
    timezone: TimeZone | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    task_name: ShortText | UnsetType | None = UNSET
    task_args: list[Any] | UnsetType = UNSET
    task_kwargs: dict[str, Any] | UnsetType = UNSET
    max_retries: Retries | UnsetType = UNSET
    retry_delay: Delay | UnsetType = UNSET
    retry_backoff: bool | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    misfire: MisfirePolicyBody | UnsetType = UNSET
    overlap: Overlap | UnsetType = UNSET
    jitter_seconds: JitterSeconds | UnsetType = UNSET
    start_at: datetime | UnsetType | None = UNSET
    end_at: datetime | UnsetType | None = UNSET
    exclusions: ExclusionsBody | UnsetType | None = UNSET
    callback_url: Url | UnsetType | None = UNSET
    failure_callback_url: Url | UnsetType | None = UNSET
    flow_control: FlowControlBody | UnsetType | None = UNSET
    tags: Tags | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    created_by: ShortText | UnsetType | None = UNSET

    def given(self) -> dict[str, Any]:
        """The fields given, by name (None included: a field given as empty)."""
        return {
            name: value for name in self.__struct_fields__ if not isinstance(value := getattr(self, name), UnsetType)
        }
