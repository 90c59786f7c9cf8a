"""Schedule specifications carried inside job state. Tagged so new kinds can be added without breaking readers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec


class CronSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="cron", tag_field="kind"):
    """A cron expression: 5 fields, or 6 with seconds first; @hourly-style macros allowed."""

    expression: str


class IntervalSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="interval", tag_field="kind"):
    """Every `every_seconds` seconds from `anchor`; wall clocks and daylight saving do not apply."""

    every_seconds: Annotated[float, msgspec.Meta(gt=0)]
    anchor: datetime


class DateSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="date", tag_field="kind"):
    """Exactly once, at `at` (UTC)."""

    at: datetime


Schedule = CronSchedule | IntervalSchedule | DateSchedule
