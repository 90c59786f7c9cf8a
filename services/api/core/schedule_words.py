"""Schedules in words and their next fire times, as the cron tools and the dashboard show them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cron_descriptor import (
    FormatException,
    MissingFieldException,
    Options,
    WrongArgumentException,
    get_description,
)

from shared.contracts.schedules import (
    AfterSchedule,
    CalendarSchedule,
    CronSchedule,
    DateSchedule,
    Exclusions,
    IntervalSchedule,
    Schedule,
)
from shared.schedule.exclusions import included_after
from shared.schedule.occurrences import occurrences_after
from shared.schedule.wallclock import zone

_MACROS = {
    "@yearly": "Yearly",
    "@annually": "Yearly",
    "@monthly": "Monthly",
    "@weekly": "Weekly",
    "@daily": "Daily",
    "@midnight": "Daily at midnight",
    "@hourly": "Every hour",
}
_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")  # 0 and 7 are Sunday
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TICK = timedelta(microseconds=1)


@functools.lru_cache(maxsize=4096)
def describe(expression: str) -> str:
    """In words, as cron-descriptor puts it (seconds first for 6 fields, as the scheduler reads them)."""
    if expression.startswith("@"):
        return _MACROS.get(expression.lower(), expression)
    options = Options()
    options.use_24hour_time_format = False
    try:
        return str(get_description(expression, options))
    except (FormatException, MissingFieldException, WrongArgumentException, ValueError, IndexError):
        return expression  # valid for the scheduler, beyond the describer: show it as written


def _duration(seconds: float) -> str:
    parts = []
    rest = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if rest >= size:
            count, rest = divmod(rest, size)
            parts.append(f"{int(count)} {unit}")
    if rest or not parts:
        parts.append(f"{rest:g} s")
    return " ".join(parts)


def _shown(moment: datetime, tz: ZoneInfo) -> str:
    """A time in the zone; one the zone cannot hold (near year 1 or 9999, stored before such times were refused)
    in UTC."""
    try:
        return f"{moment.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}"
    except (OverflowError, ValueError):
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def describe_schedule(schedule: Schedule, timezone: str) -> str:
    """One sentence for any kind of schedule; times are wall-clock times in `timezone`."""
    tz = zone(timezone)
    if isinstance(schedule, CronSchedule):
        return f"{describe(schedule.expression)} ({timezone})"
    if isinstance(schedule, IntervalSchedule):
        return f"Every {_duration(schedule.every_seconds)}, counted from {_shown(schedule.anchor, tz)}"
    if isinstance(schedule, DateSchedule):
        return f"Once, at {_shown(schedule.at, tz)}"
    if isinstance(schedule, AfterSchedule):
        ended = {"success": "succeeds", "failure": "fails (is dead-lettered)", "completion": "ends"}[schedule.on]
        return f"After each occurrence of job {schedule.job_id} that {ended}"
    assert isinstance(schedule, CalendarSchedule)
    if schedule.rule is None:
        return f"By the rule {schedule.rrule} ({timezone})"
    rule = schedule.rule
    parts = []
    if rule.weekdays:
        parts.append("on " + ", ".join(_WEEKDAYS[d % 7] for d in rule.weekdays))
    if rule.days_of_month:
        days = ", ".join("the last" if d == -1 else str(d) for d in rule.days_of_month)
        parts.append(f"on day {days} of the month")
    if rule.months:
        parts.append("in " + ", ".join(_MONTHS[(m - 1) % 12] for m in rule.months))
    times = rule.times or ((rule.time,) if rule.time else ())
    parts.append("at " + ", ".join(times) if times else "at midnight")
    if rule.exclude_dates:
        parts.append("except " + ", ".join(d.isoformat() for d in rule.exclude_dates))
    return ("Every day " if not (rule.weekdays or rule.days_of_month) else "") + " ".join(parts) + f" ({timezone})"


@dataclass(frozen=True, slots=True)
class FireTime:
    """One upcoming fire time in the job's zone; `offset_change` says how a daylight-saving change before it
    moved the zone's UTC offset (for example "UTC+01:00 → UTC+02:00")."""

    at: datetime
    offset_change: str | None


def _offset(moment: datetime) -> str:
    return f"UTC{moment:%z}"[:-2] + ":" + f"{moment:%z}"[-2:]


def next_fire_times(
    schedule: Schedule,
    timezone: str,
    after: datetime,
    count: int,
    *,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    exclusions: Exclusions | None = None,
) -> list[FireTime]:
    """The next `count` fire times within [start_at, end_at] and not excluded, each marked where the zone's offset
    changed."""
    tz = zone(timezone)
    if start_at is not None and after < start_at:
        after = start_at - _TICK
    previous = after.astimezone(tz)
    found: list[FireTime] = []
    # A calendar rule is walked once by occurrences_after; with exclusions, each next occurrence is found anew.
    moments = (
        occurrences_after(schedule, timezone, after)
        if exclusions is None
        else included_after(schedule, timezone, after, exclusions)
    )
    for moment in moments:
        if len(found) >= count or (end_at is not None and moment > end_at):
            break
        try:
            local = moment.astimezone(tz)
        except (OverflowError, ValueError):  # past what the zone can show
            break
        change = None
        if local.utcoffset() != previous.utcoffset():
            change = f"{_offset(previous)} → {_offset(local)}"
        found.append(FireTime(local, change))
        previous = local
    return found
