"""Calendar schedules as wall-clock times: a JSON rule or an RFC 5545 RRULE, both through dateutil's rrule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time

from dateutil.rrule import DAILY, rrule, rruleset, rrulestr, weekday

from shared.contracts.schedules import CalendarRule, CalendarSchedule
from shared.schedule.errors import InvalidScheduleError

# dateutil numbers weekdays Monday = 0 ... Sunday = 6; rules use 1 = Monday ... 7 = Sunday, and 0 for Sunday.
_WEEKDAYS = {0: 6, 1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6}
_SUB_DAILY = re.compile(r"FREQ\s*=\s*(HOURLY|MINUTELY|SECONDLY)", re.IGNORECASE)
# Excluded dates are skipped one occurrence at a time; a rule whose every match is excluded must still end.
_MAX_SKIPPED = 10_000


def _parse_time(text: str) -> time:
    try:
        parsed = time.fromisoformat(text)
    except ValueError as exc:
        raise InvalidScheduleError(f"calendar time {text!r} is not HH:MM or HH:MM:SS") from exc
    if parsed.tzinfo is not None or parsed.microsecond:
        raise InvalidScheduleError(
            f"calendar time {text!r} must be a plain wall-clock time (the job's time zone applies)"
        )
    return parsed


def _times(rule: CalendarRule) -> list[time]:
    texts = [*rule.times, *([rule.time] if rule.time else [])]
    if not texts:
        raise InvalidScheduleError("a calendar rule needs at least one time ('time' or 'times')")
    return sorted({_parse_time(t) for t in texts})


def _check_rule(rule: CalendarRule) -> None:
    for day in rule.weekdays:
        if day not in _WEEKDAYS:
            raise InvalidScheduleError(f"weekday {day} is not 1 (Monday) .. 7 (Sunday), or 0 (Sunday)")
    for day in rule.days_of_month:
        if not (1 <= day <= 31 or day == -1):
            raise InvalidScheduleError(f"day of month {day} is not 1..31 or -1 (the last day)")
    for month in rule.months:
        if not 1 <= month <= 12:
            raise InvalidScheduleError(f"month {month} is not 1..12")
    _times(rule)


def _rule_set(rule: CalendarRule, day_start: datetime) -> rruleset:
    rules = rruleset()
    weekdays = [weekday(_WEEKDAYS[d]) for d in sorted(set(rule.weekdays))] or None
    for at in _times(rule):
        rules.rrule(
            rrule(
                DAILY,
                dtstart=day_start,
                byweekday=weekdays,
                bymonthday=sorted(set(rule.days_of_month)) or None,
                bymonth=sorted(set(rule.months)) or None,
                byhour=at.hour,
                byminute=at.minute,
                bysecond=at.second,
            )
        )
    return rules


def _parsed_rrule(text: str, anchor_wall: datetime) -> rrule | rruleset:
    # Each evaluation walks the rule from its start, so sub-daily frequencies would get slower every day the job
    # lives; cron and interval schedules cover those.
    if _SUB_DAILY.search(text):
        raise InvalidScheduleError("RRULE frequencies finer than DAILY are not supported: use a cron or interval job")
    try:
        parsed = rrulestr(text.strip(), dtstart=anchor_wall.replace(microsecond=0), forceset=True)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidScheduleError(f"invalid RRULE {text!r}: {exc}") from exc
    try:
        parsed.after(anchor_wall)
    except TypeError as exc:  # an aware DTSTART cannot be compared with wall-clock times
        raise InvalidScheduleError(
            "the RRULE's DTSTART must be a floating local time (no Z or TZID): the job's time zone applies"
        ) from exc
    return parsed


def check_calendar(schedule: CalendarSchedule) -> None:
    """Raise InvalidScheduleError unless the schedule has exactly one well-formed rule."""
    if (schedule.rule is None) == (schedule.rrule is None):
        raise InvalidScheduleError("a calendar schedule has either a rule object or an RRULE string")
    if schedule.rule is not None:
        _check_rule(schedule.rule)
    else:
        assert schedule.rrule is not None
        _parsed_rrule(schedule.rrule, datetime(2000, 1, 1))


def walls_after(schedule: CalendarSchedule, start_wall: datetime, anchor_wall: datetime) -> Iterator[datetime]:
    """Matching wall-clock times strictly after `start_wall` (naive), in order, without excluded dates."""
    if schedule.rule is not None:
        rules: rrule | rruleset = _rule_set(
            schedule.rule, start_wall.replace(hour=0, minute=0, second=0, microsecond=0)
        )
        excluded: frozenset[date] = frozenset(schedule.rule.exclude_dates)
    else:
        assert schedule.rrule is not None
        rules = _parsed_rrule(schedule.rrule, anchor_wall)
        excluded = frozenset()
    cursor = start_wall
    skipped = 0
    while True:
        found = rules.after(cursor, inc=False)
        if found is None:
            return
        cursor = found
        if found.date() in excluded:
            skipped += 1
            if skipped > _MAX_SKIPPED:
                return
            continue
        skipped = 0
        yield found
