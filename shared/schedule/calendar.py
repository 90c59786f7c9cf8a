"""Calendar schedules as wall-clock times: a JSON rule or an RFC 5545 RRULE, both through dateutil's rrule."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, time

from dateutil.rrule import YEARLY, rrule, rruleset, rrulestr, weekday

from shared.contracts.schedules import CalendarRule, CalendarSchedule
from shared.schedule.errors import InvalidScheduleError
from shared.schedule.wallclock import to_wall, zone

# dateutil numbers weekdays Monday = 0 ... Sunday = 6; rules use 1 = Monday ... 7 = Sunday, and 0 for Sunday.
_WEEKDAYS = {0: 6, 1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6}
_SUB_DAILY = re.compile(r"FREQ\s*=\s*(HOURLY|MINUTELY|SECONDLY)", re.IGNORECASE)
# Excluded dates are skipped one occurrence at a time; a rule whose every match is excluded must still end.
_MAX_SKIPPED = 10_000
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# The most days each month ever has (February in a leap year).
_LONGEST = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_UTC_UNTIL = re.compile(r"UNTIL\s*=\s*(\d{8}T\d{6})Z", re.IGNORECASE)
_AWARE_DTSTART = re.compile(r"DTSTART\s*(;\s*TZID\s*=|[:=]\s*\d{8}T\d{6}Z)", re.IGNORECASE)
_DAY_FILTERS = frozenset({"BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY", "BYEASTER", "WKST"})
_CYCLE_START = datetime(9600, 1, 1)
_DTSTART = re.compile(r"DTSTART", re.IGNORECASE)
_DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# The most days one period of each frequency has, and its name.
_PERIOD_DAYS = {"DAILY": 1, "WEEKLY": 7, "MONTHLY": 31, "YEARLY": 366}
_PERIOD_NAMES = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}
_BY_PART = re.compile(r"(BYMONTH|BYMONTHDAY)\s*=\s*([-+0-9,\s]+)", re.IGNORECASE)


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


def check_matches_some_day(months: tuple[int, ...], days_of_month: tuple[int, ...]) -> None:
    """Raise InvalidScheduleError, saying why, if no month of `months` (empty: all) has a day of `days_of_month`
    (empty: all; -1 is the last day).

    This is the only way a calendar rule can never fire. Weekdays cannot make it so: the Gregorian calendar repeats
    every 400 years, and within that cycle every day a month can have (February 29 too) falls on all seven
    weekdays. Excluded dates cannot either: there are finitely many of them.
    """
    days = sorted(set(days_of_month))
    if not days or -1 in days:
        return
    chosen = sorted(set(months)) or range(1, 13)
    if any(day <= _LONGEST[month - 1] for month in chosen for day in days):
        return
    reasons = [
        f"{_MONTHS[month - 1]} has no day " + " or ".join(str(d) for d in days if d > _LONGEST[month - 1])
        for month in chosen
    ]
    raise InvalidScheduleError("the rule never fires: " + ", ".join(reasons))


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


def _probe(line: str) -> str | None:
    """The day filters of one RRULE line as a yearly rule (None: it has none, so every period has days).

    Yearly, because dateutil then takes a year per step: a 400-year walk is 400 steps. A monthly rule's numbered
    weekdays ("1MO") count within each month, as they do in a yearly rule that lists its months; finer rules have
    no numbered weekdays (dateutil reads "1MO" as Monday).
    """
    parts = dict(
        part.split("=", 1) for part in line.upper().removeprefix("RRULE:").replace(" ", "").split(";") if "=" in part
    )
    kept = {k: v for k, v in parts.items() if k in _DAY_FILTERS}
    if not kept.keys() - {"BYMONTH", "WKST"}:
        return None
    if parts.get("FREQ") == "MONTHLY":
        kept.setdefault("BYMONTH", ",".join(str(m) for m in range(1, 13)))
    elif parts.get("FREQ") in ("WEEKLY", "DAILY") and "BYDAY" in kept:
        kept["BYDAY"] = ",".join(d.lstrip("+-0123456789") for d in kept["BYDAY"].split(","))
    return "RRULE:FREQ=YEARLY;" + ";".join(f"{k}={v}" for k, v in kept.items())


@functools.lru_cache(maxsize=1024)
def _check_rrule_matches_some_day(text: str) -> None:
    """Refuse, in a bounded time, an RRULE whose day filters (BYMONTH, BYMONTHDAY, BYYEARDAY, BYWEEKNO, BYDAY)
    match no day at all: dateutil would search it up to year 9999, seconds of CPU for a daily rule.

    The Gregorian calendar repeats every 400 years, so a filter that matches no day of 400 years matches none
    ever. The walk starts in year 9600 (the same place in the cycle as 2000), where dateutil's own end, year 9999,
    stops it after one cycle.
    """
    for line in text.splitlines() or [text]:
        if not line.upper().lstrip().startswith(("RRULE:", "FREQ=")):
            continue
        parts = _by_parts(line)
        months = parts.get("BYMONTH", ())
        days = parts.get("BYMONTHDAY", ())
        if all(1 <= m <= 12 for m in months) and all(1 <= d <= 31 or d < 0 for d in days):
            check_matches_some_day(months, tuple(-1 if d < 0 else d for d in days))
        _check_set_positions(line)
        probe = _probe(line.strip())
        if probe is None:
            continue
        try:
            first = rrulestr(probe, dtstart=_CYCLE_START).after(_CYCLE_START, inc=True)
        except (ValueError, TypeError, KeyError, IndexError):
            continue  # not a rule dateutil reads: parsing it says why
        if first is None:
            named = ", ".join(sorted(_by_parts_named(line)))
            raise InvalidScheduleError(f"the rule never fires: no day has all of {named} of {line.strip()!r}")


def _check_set_positions(line: str) -> None:
    """Refuse a BYSETPOS that asks for more occurrences than any period can hold (the 6th Monday of a month):
    dateutil would search it up to year 9999. An upper bound, so a rule it lets through may still be empty."""
    parts = dict(
        part.split("=", 1) for part in line.upper().removeprefix("RRULE:").replace(" ", "").split(";") if "=" in part
    )
    freq = parts.get("FREQ", "")
    try:
        positions = [abs(int(p)) for p in parts.get("BYSETPOS", "").split(",") if p]
        counts = {k: len(parts[k].split(",")) for k in ("BYMONTH", "BYMONTHDAY", "BYHOUR", "BYMINUTE", "BYSECOND")
                  if k in parts}  # fmt: skip
    except ValueError:
        return  # dateutil says what is wrong with it
    if not positions or freq not in _PERIOD_DAYS:
        return
    most = _PERIOD_DAYS[freq]
    if "BYDAY" in parts:
        days = parts["BYDAY"].split(",")
        plain = sum(1 for d in days if d.isalpha())
        most = min(most, {"DAILY": 1, "WEEKLY": 7, "MONTHLY": 5, "YEARLY": 53}[freq] * plain + 12 * (len(days) - plain))
    if "BYMONTHDAY" in parts and freq in ("MONTHLY", "YEARLY"):
        most = min(most, counts["BYMONTHDAY"] * (12 if freq == "YEARLY" else 1))
    if "BYMONTH" in parts and freq == "YEARLY":
        most = min(most, 31 * counts["BYMONTH"])
    most *= counts.get("BYHOUR", 1) * counts.get("BYMINUTE", 1) * counts.get("BYSECOND", 1)
    if min(positions) > most:
        raise InvalidScheduleError(
            f"the rule never fires: BYSETPOS={parts['BYSETPOS']} asks for more than the {most} occurrences at most "
            f"that one {_PERIOD_NAMES[freq]} of {line.strip()!r} has"
        )


@functools.lru_cache(maxsize=4096)
def _check_rrule_lands(text: str, start: datetime) -> None:
    """Refuse, in a bounded time, an RRULE whose INTERVAL or BYSETPOS, counted from its start, never lands on a day
    its filters allow ("every 7 days on Mondays" from a Tuesday; "every 4 years on February 29" from 2027).

    A yearly or monthly rule repeats after the least common multiple of its INTERVAL and the calendar's 400 years:
    it is walked over one such span that ends at year 9999 (dateutil's own end), its start moved there by whole
    400-year cycles, which keep every weekday and leap day. At most 4,800 steps.
    """
    for line in text.splitlines() or [text]:
        if not line.upper().lstrip().startswith(("RRULE:", "FREQ=")):
            continue
        parts = dict(
            p.split("=", 1) for p in line.upper().removeprefix("RRULE:").replace(" ", "").split(";") if "=" in p
        )
        freq, byday = parts.get("FREQ", ""), parts.get("BYDAY", "")
        try:
            interval = int(parts.get("INTERVAL", "1"))
        except ValueError:
            return  # dateutil says what is wrong with it
        weekdays = {d for d in byday.split(",") if d.isalpha()}
        if freq == "DAILY" and interval % 7 == 0 and weekdays and weekdays == set(byday.split(",")):
            if _DAY_CODES[start.weekday()] not in weekdays:
                raise InvalidScheduleError(
                    f"the rule never fires: every {interval} days from {start:%A %Y-%m-%d} is never a {byday} day"
                )
            continue
        if freq not in ("YEARLY", "MONTHLY") or (interval == 1 and "BYSETPOS" not in parts):
            continue
        per_year = 1 if freq == "YEARLY" else 12
        span_years = math.lcm(400 * per_year, interval) // per_year
        shift = 400 * ((datetime.max.year - start.year - span_years) // 400)
        if shift < 0:
            continue  # a span longer than the calendar: dateutil reaches year 9999 in few steps anyway
        probe = ";".join(f"{k}={v}" for k, v in parts.items() if k not in ("COUNT", "UNTIL"))
        moved = start.replace(year=start.year + shift)
        try:
            first = rrulestr(f"RRULE:{probe}", dtstart=moved).after(moved, inc=True)
        except (ValueError, TypeError, KeyError, IndexError):
            continue
        if first is None:
            raise InvalidScheduleError(
                f"the rule never fires: counted from {start:%Y-%m-%d}, {line.strip()!r} never lands on a day it allows"
            )


def _by_parts(text: str) -> dict[str, tuple[int, ...]]:
    found: dict[str, tuple[int, ...]] = {}
    for name, values in _BY_PART.findall(text):
        try:
            found[name.upper()] = tuple(int(v) for v in values.replace(" ", "").split(",") if v)
        except ValueError:
            continue  # dateutil says what is wrong with it
    return found


def _by_parts_named(line: str) -> set[str]:
    return {
        part.split("=", 1)[0].strip()
        for part in line.upper().removeprefix("RRULE:").split(";")
        if part.split("=", 1)[0].strip() in _DAY_FILTERS - {"WKST"}
    }


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
        parsed = rrulestr(_wall_until(text.strip(), tz_name), dtstart=anchor_wall.replace(microsecond=0), forceset=True)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidScheduleError(f"invalid RRULE {text!r}: {exc}") from exc
    _check_rrule_matches_some_day(text)
    if not _DTSTART.search(text):
        _check_rrule_lands(text, anchor_wall.replace(microsecond=0))
    return parsed


def check_calendar(schedule: CalendarSchedule, timezone: str = "UTC") -> None:
    """Raise InvalidScheduleError unless the schedule has exactly one well-formed rule that can fire."""
    if (schedule.rule is None) == (schedule.rrule is None):
        raise InvalidScheduleError("a calendar schedule has either a rule object or an RRULE string")
    if schedule.rule is not None:
        _check_rule(schedule.rule)
    else:
        assert schedule.rrule is not None
        _parsed_rrule(schedule.rrule, to_wall(schedule.anchor, zone(timezone)), timezone)


def walls_after(
    schedule: CalendarSchedule, start_wall: datetime, anchor_wall: datetime, timezone: str
) -> Iterator[datetime]:
    """Matching wall-clock times strictly after `start_wall` (naive), in order, without excluded dates."""
    if schedule.rule is not None:
        yield from _rule_walls(schedule.rule, start_wall)
    else:
        assert schedule.rrule is not None
        try:
            rules = _parsed_rrule(schedule.rrule, anchor_wall, timezone)
        except InvalidScheduleError:
            return  # stored before such rules were refused: it never fires
        yield from rules.xafter(start_wall, inc=False)
