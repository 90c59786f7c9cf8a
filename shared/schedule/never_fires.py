"""Bounded checks that a calendar rule or an RRULE can fire at all.

dateutil searches a rule that never matches again up to year 9999: seconds of CPU for a daily rule, on whatever
loop asked. Every check here refuses such a rule first, saying why, in a bounded time. They lean on the Gregorian
calendar repeating every 400 years (146,097 days: whole weeks), so a pattern that matches nothing in one cycle
(or in one repeat of its INTERVAL and the cycle) matches nothing ever.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import datetime

from dateutil.rrule import rrulestr

from shared.schedule.errors import InvalidScheduleError

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
_DAY_FILTERS = frozenset({"BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY", "BYEASTER", "WKST"})
_CYCLE_START = datetime(9600, 1, 1)
_DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# The most days one period of each frequency has, and its name.
_PERIOD_DAYS = {"DAILY": 1, "WEEKLY": 7, "MONTHLY": 31, "YEARLY": 366}
_PERIOD_NAMES = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}
_BY_PART = re.compile(r"(BYMONTH|BYMONTHDAY)\s*=\s*([-+0-9,\s]+)", re.IGNORECASE)


def rrule_parts(line: str) -> dict[str, str]:
    """An RRULE line's parts by name ("FREQ": "DAILY"), upper case, without spaces."""
    return dict(p.split("=", 1) for p in line.upper().removeprefix("RRULE:").replace(" ", "").split(";") if "=" in p)


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


def _probe(line: str) -> str | None:
    """The day filters of one RRULE line as a yearly rule (None: it has none, so every period has days).

    Yearly, because dateutil then takes a year per step: a 400-year walk is 400 steps. A monthly rule's numbered
    weekdays ("1MO") count within each month, as they do in a yearly rule that lists its months; finer rules have
    no numbered weekdays (dateutil reads "1MO" as Monday).
    """
    parts = rrule_parts(line)
    kept = {k: v for k, v in parts.items() if k in _DAY_FILTERS}
    if not kept.keys() - {"BYMONTH", "WKST"}:
        return None
    if parts.get("FREQ") == "MONTHLY":
        kept.setdefault("BYMONTH", ",".join(str(m) for m in range(1, 13)))
    elif parts.get("FREQ") in ("WEEKLY", "DAILY") and "BYDAY" in kept:
        kept["BYDAY"] = ",".join(d.lstrip("+-0123456789") for d in kept["BYDAY"].split(","))
    return "RRULE:FREQ=YEARLY;" + ";".join(f"{k}={v}" for k, v in kept.items())


@functools.lru_cache(maxsize=1024)
def check_rrule_matches_some_day(text: str) -> None:
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
    parts = rrule_parts(line)
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
def check_rrule_lands(text: str, start: datetime) -> None:
    """Refuse, in a bounded time, an RRULE whose INTERVAL or BYSETPOS, counted from its start, never lands on a day
    its filters allow ("every 7 days on Mondays" from a Tuesday; "every 4 years on February 29" from 2027).

    A yearly or monthly rule repeats after the least common multiple of its INTERVAL and the calendar's 400 years:
    it is walked over one such span that ends at year 9999 (dateutil's own end), its start moved there by whole
    400-year cycles, which keep every weekday and leap day. At most 4,800 steps.
    """
    for line in text.splitlines() or [text]:
        if not line.upper().lstrip().startswith(("RRULE:", "FREQ=")):
            continue
        parts = rrule_parts(line)
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
    return set(rrule_parts(line)) & (_DAY_FILTERS - {"WKST"})
