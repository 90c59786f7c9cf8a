"""Calendar schedules as wall-clock times: a JSON rule or an RFC 5545 RRULE, both through dateutil's rrule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, time

from dateutil.rrule import YEARLY, rrule, rruleset, rrulestr, weekday

from shared.contracts.schedules import CalendarRule, CalendarSchedule
from shared.schedule.errors import InvalidScheduleError
from shared.schedule.never_fires import (
    check_matches_some_day,
    check_rrule_lands,
    check_rrule_matches_some_day,
    rrule_parts,
)
from shared.schedule.wallclock import to_wall, zone

# dateutil numbers weekdays Monday = 0 ... Sunday = 6; rules use 1 = Monday ... 7 = Sunday, and 0 for Sunday.
_WEEKDAYS = {0: 6, 1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6}
_SUB_DAILY = re.compile(r"FREQ\s*=\s*(HOURLY|MINUTELY|SECONDLY)", re.IGNORECASE)
# Excluded dates are skipped one occurrence at a time; a rule whose every match is excluded must still end.
_MAX_SKIPPED = 10_000
_UTC_UNTIL = re.compile(r"UNTIL\s*=\s*(\d{8}T\d{6})Z", re.IGNORECASE)
_AWARE_DTSTART = re.compile(r"DTSTART\s*(;\s*TZID\s*=|[:=]\s*\d{8}T\d{6}Z)", re.IGNORECASE)
_DTSTART = re.compile(r"DTSTART", re.IGNORECASE)


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
    check_matches_some_day(rule.months, rule.days_of_month)


def _days(rule: CalendarRule, first_day: datetime) -> rrule:
    """The days the rule matches from `first_day` on (as midnights).

    Yearly with every weekday allowed is the same set of days as daily with the rule's filters, but dateutil walks
    it a year per step instead of a day: "February 29 on a Monday", 40 years away at worst, takes 40 steps. Passing
    the weekdays always also stops dateutil taking a missing month or day from DTSTART.
    """
    return rrule(
        YEARLY,
        dtstart=first_day,
        byweekday=[weekday(_WEEKDAYS[d]) for d in sorted(set(rule.weekdays) or range(1, 8))],
        bymonthday=sorted(set(rule.days_of_month)) or None,
        bymonth=sorted(set(rule.months)) or None,
        byhour=0,
        byminute=0,
        bysecond=0,
    )


def _rule_walls(rule: CalendarRule, start_wall: datetime) -> Iterator[datetime]:
    try:
        check_matches_some_day(rule.months, rule.days_of_month)
    except InvalidScheduleError:
        return  # stored before such rules were refused: it never fires
    times = _times(rule)
    excluded = frozenset(rule.exclude_dates)
    skipped = 0
    for day in _days(rule, start_wall.replace(hour=0, minute=0, second=0, microsecond=0)):
        if day.date() in excluded:
            skipped += 1
            if skipped > _MAX_SKIPPED:
                return
            continue
        skipped = 0
        for at in times:
            wall = datetime.combine(day.date(), at)
            if wall > start_wall:
                yield wall


def _wall_until(text: str, tz_name: str) -> str:
    """A UTC UNTIL (RFC 5545 asks for one when DTSTART has a zone: here the job's) as wall-clock time in the job's
    zone, as the rule is evaluated."""

    def local(match: re.Match[str]) -> str:
        instant = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        try:
            return f"UNTIL={to_wall(instant, zone(tz_name)):%Y%m%dT%H%M%S}"
        except (OverflowError, ValueError):
            return match.group(0)  # dateutil says what is wrong with it

    try:
        return _UTC_UNTIL.sub(local, text)
    except ValueError as exc:
        raise InvalidScheduleError(f"invalid RRULE {text!r}: UNTIL: {exc}") from exc


def _yearly_walk(text: str) -> str:
    """The same rule, walked a year per step where that is the same set: a DAILY rule with no INTERVAL or
    BYSETPOS is the YEARLY rule of the same filters (dateutil reads every BY part of both as a filter on days, and
    numbered weekdays of a daily rule as plain ones), with every weekday allowed so that dateutil takes no month
    or day from DTSTART. A daily walk takes 365 steps a year: "February 29 on a Monday" was 10,000 between runs."""
    lines = []
    for line in text.splitlines():
        parts = rrule_parts(line)
        daily = line.upper().lstrip().startswith(("RRULE:", "FREQ=")) and parts.get("FREQ") == "DAILY"
        if daily and parts.get("INTERVAL", "1") == "1" and "BYSETPOS" not in parts:
            days = parts.get("BYDAY", "MO,TU,WE,TH,FR,SA,SU")
            parts |= {"FREQ": "YEARLY", "BYDAY": ",".join(d.lstrip("+-0123456789") for d in days.split(","))}
            line = "RRULE:" + ";".join(f"{k}={v}" for k, v in parts.items())
        lines.append(line)
    return "\n".join(lines)


def _parsed_rrule(text: str, anchor_wall: datetime, tz_name: str) -> rrule | rruleset:
    # Each evaluation walks the rule from its start, so sub-daily frequencies would get slower every day the job
    # lives; cron and interval schedules cover those.
    if _SUB_DAILY.search(text):
        raise InvalidScheduleError("RRULE frequencies finer than DAILY are not supported: use a cron or interval job")
    if _AWARE_DTSTART.search(text):  # it could not be compared with wall-clock times
        raise InvalidScheduleError(
            "the RRULE's DTSTART must be a floating local time (no Z or TZID): the job's time zone applies"
        )
    try:
        parsed = rrulestr(
            _yearly_walk(_wall_until(text.strip(), tz_name)), dtstart=anchor_wall.replace(microsecond=0), forceset=True
        )
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidScheduleError(f"invalid RRULE {text!r}: {exc}") from exc
    check_rrule_matches_some_day(text)
    if not _DTSTART.search(text):
        check_rrule_lands(text, anchor_wall.replace(microsecond=0))
    return parsed


def check_calendar(schedule: CalendarSchedule, timezone: str = "UTC") -> None:
    """Raise InvalidScheduleError unless the schedule has exactly one well-formed rule that can fire."""
    if schedule.rule is not None and schedule.rrule is None:
        _check_rule(schedule.rule)
    elif schedule.rrule is not None and schedule.rule is None:
        _parsed_rrule(schedule.rrule, to_wall(schedule.anchor, zone(timezone)), timezone)
    else:
        raise InvalidScheduleError("a calendar schedule has either a rule object or an RRULE string")


def walls_after(
    schedule: CalendarSchedule, start_wall: datetime, anchor_wall: datetime, timezone: str
) -> Iterator[datetime]:
    """Matching wall-clock times strictly after `start_wall` (naive), in order, without excluded dates."""
    if schedule.rule is not None:
        yield from _rule_walls(schedule.rule, start_wall)
    elif schedule.rrule is not None:
        try:
            rules = _parsed_rrule(schedule.rrule, anchor_wall, timezone)
        except InvalidScheduleError:
            return  # stored before such rules were refused: it never fires
        yield from rules.xafter(start_wall, inc=False)
