"""Calendar schedules: JSON rules and RRULEs in wall-clock time, with the daylight-saving rules of cron."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from dateutil.rrule import rrulestr

from shared.contracts.schedules import CalendarRule, CalendarSchedule
from shared.schedule.errors import InvalidScheduleError
from shared.schedule.occurrences import next_after, occurrences_between, validate_schedule

pytestmark = pytest.mark.unit

# An unguarded search (dateutil's, up to year 9999) takes seconds of CPU, up to 20 s; the guarded one takes a few ms.
# The bound sits between the two, far enough above the guarded cost that this box's 3x day-to-day swings and a first
# call's imports do not reach it (0.05 s did, on a slow day).
UNBOUNDED_SEARCH_CPU = 1.0

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def rule(**fields: object) -> CalendarSchedule:
    return CalendarSchedule(rule=CalendarRule(**fields), anchor=ANCHOR)  # type: ignore[arg-type]


def runs(schedule: CalendarSchedule, tz: str, start: datetime, end: datetime) -> list[datetime]:
    return list(occurrences_between(schedule, tz, start, end))


def test_weekdays_at_nine_new_york_as_the_original_clients_send_it() -> None:
    schedule = rule(weekdays=(1, 2, 3, 4, 5), time="09:00")
    # Friday 2026-11-20 to Tuesday 2026-11-24: Fri, Mon, Tue at 09:00 EST (14:00 UTC).
    found = runs(
        schedule, "America/New_York", datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 24, 23, tzinfo=UTC)
    )
    assert found == [
        datetime(2026, 11, 20, 14, tzinfo=UTC),
        datetime(2026, 11, 23, 14, tzinfo=UTC),
        datetime(2026, 11, 24, 14, tzinfo=UTC),
    ]


def test_days_months_times_and_exclusions_combine() -> None:
    schedule = rule(
        days_of_month=(1, -1), months=(2, 3), times=("08:30", "17:00:15"), exclude_dates=(date(2027, 3, 1),)
    )
    found = runs(schedule, "UTC", datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 12, 31, tzinfo=UTC))
    assert found == [
        datetime(2027, 2, 1, 8, 30, tzinfo=UTC),
        datetime(2027, 2, 1, 17, 0, 15, tzinfo=UTC),
        datetime(2027, 2, 28, 8, 30, tzinfo=UTC),
        datetime(2027, 2, 28, 17, 0, 15, tzinfo=UTC),
        datetime(2027, 3, 31, 8, 30, tzinfo=UTC),
        datetime(2027, 3, 31, 17, 0, 15, tzinfo=UTC),
    ]


def test_sunday_is_seven_or_zero() -> None:
    for sunday in (0, 7):
        found = next_after(rule(weekdays=(sunday,), time="12:00"), "UTC", datetime(2026, 11, 22, 13, tzinfo=UTC))
        assert found == datetime(2026, 11, 29, 12, tzinfo=UTC)


def test_daylight_saving_gap_fires_once_at_the_first_valid_instant_and_overlap_fires_once() -> None:
    # New York springs forward on 2026-03-08 (02:00 -> 03:00) and falls back on 2026-11-01 (02:00 -> 01:00).
    gap = runs(
        rule(time="02:30"), "America/New_York", datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    )
    assert gap == [
        datetime(2026, 3, 6, 7, 30, tzinfo=UTC),  # 02:30 EST
        datetime(2026, 3, 7, 7, 30, tzinfo=UTC),
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 EDT, the first valid instant
        datetime(2026, 3, 9, 6, 30, tzinfo=UTC),  # 02:30 EDT
    ]
    overlap = runs(
        rule(time="01:30"),
        "America/New_York",
        datetime(2026, 10, 31, tzinfo=UTC),
        datetime(2026, 11, 2, 12, tzinfo=UTC),
    )
    assert overlap == [
        datetime(2026, 10, 31, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # the first 01:30 (EDT) only
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
    ]


def test_rrule_strings_with_count_end() -> None:
    schedule = CalendarSchedule(rrule="FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0;COUNT=3", anchor=ANCHOR)
    found = runs(schedule, "Europe/Paris", ANCHOR, datetime(2027, 1, 1, tzinfo=UTC))
    assert found == [
        datetime(2026, 1, 5, 8, tzinfo=UTC),
        datetime(2026, 1, 7, 8, tzinfo=UTC),
        datetime(2026, 1, 12, 8, tzinfo=UTC),
    ]
    assert next_after(schedule, "Europe/Paris", datetime(2026, 1, 12, 8, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    "schedule",
    [
        rule(),
        rule(time="25:00"),
        rule(time="09:00+02:00"),
        rule(time="09:00", weekdays=(8,)),
        rule(time="09:00", days_of_month=(0,)),
        rule(time="09:00", months=(13,)),
        CalendarSchedule(rrule="FREQ=SOMETIMES", anchor=ANCHOR),
        CalendarSchedule(rrule="FREQ=MINUTELY", anchor=ANCHOR),
        CalendarSchedule(rrule="DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY", anchor=ANCHOR),
        CalendarSchedule(anchor=ANCHOR),
        CalendarSchedule(rule=CalendarRule(time="09:00"), rrule="FREQ=DAILY", anchor=ANCHOR),
    ],
)
def test_bad_calendars_are_refused(schedule: CalendarSchedule) -> None:
    with pytest.raises(InvalidScheduleError):
        validate_schedule(schedule, "UTC")


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"months": (2,), "days_of_month": (30,)}, "February has no day 30"),
        ({"months": (2,), "days_of_month": (30, 31)}, "February has no day 30 or 31"),
        ({"months": (4, 6), "days_of_month": (31,), "weekdays": (1,)}, "April has no day 31, June has no day 31"),
    ],
)
def test_a_rule_that_never_fires_is_refused_at_once_with_the_reason(fields: dict[str, object], why: str) -> None:
    cpu = time.thread_time()
    with pytest.raises(InvalidScheduleError, match=f"never fires: {why}"):
        validate_schedule(rule(time="09:00", **fields), "UTC")
    assert time.thread_time() - cpu < UNBOUNDED_SEARCH_CPU


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "February has no day 30"),
        ("RRULE:FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31;BYHOUR=9", "April has no day 31"),
        ("FREQ=YEARLY;BYYEARDAY=366;BYMONTH=1", "no day has all of BYMONTH, BYYEARDAY"),
        ("FREQ=WEEKLY;BYWEEKNO=53;BYMONTH=6", "no day has all of BYMONTH, BYWEEKNO"),
        ("FREQ=MONTHLY;BYDAY=5MO;BYMONTHDAY=1,2,3", "no day has all of BYDAY, BYMONTHDAY"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6", "BYSETPOS=6 asks for more than the 5 occurrences at most"),
        ("FREQ=DAILY;BYHOUR=9,17;BYSETPOS=3", "BYSETPOS=3 asks for more than the 2 occurrences at most"),
        # ANCHOR, the rule's start, is Thursday 2026-01-01.
        ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", "every 7 days from Thursday 2026-01-01 is never a MO day"),
        ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", ".*never lands on a day it allows"),
        ("FREQ=MONTHLY;INTERVAL=12;BYMONTH=3", ".*never lands on a day it allows"),
    ],
)
def test_an_rrule_that_never_fires_is_refused_at_once_with_the_reason(text: str, why: str) -> None:
    """dateutil would search each of these up to year 9999: up to 20 s of CPU for the daily one."""
    cpu = time.thread_time()
    with pytest.raises(InvalidScheduleError, match=f"never fires: {why}"):
        validate_schedule(CalendarSchedule(rrule=text, anchor=ANCHOR), "UTC")
    assert time.thread_time() - cpu < UNBOUNDED_SEARCH_CPU


def test_a_monthly_rrule_whose_set_position_never_lands_is_refused() -> None:
    """The 2nd Monday among the first seven days of a month does not exist. The check walks one 400-year cycle
    of months (4,800 steps, about 80 ms of CPU here, over the 50 ms the other checks keep to); dateutil alone
    would walk to year 9999 (0.8 s)."""
    text = "FREQ=MONTHLY;BYDAY=MO;BYMONTHDAY=1,2,3,4,5,6,7;BYSETPOS=2"
    with pytest.raises(InvalidScheduleError, match=r"never fires: .* never lands on a day it allows"):
        validate_schedule(CalendarSchedule(rrule=text, anchor=ANCHOR), "UTC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=9;BYMINUTE=0", datetime(2044, 2, 29, 9)),
        ("FREQ=MONTHLY;BYDAY=5MO;BYMONTH=2;BYHOUR=9;BYMINUTE=0", datetime(2044, 2, 29, 9)),
        ("FREQ=YEARLY;BYWEEKNO=53;BYDAY=TH;BYHOUR=9;BYMINUTE=0", datetime(2026, 12, 31, 9)),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=5;BYHOUR=9;BYMINUTE=0", datetime(2026, 6, 29, 9)),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=9;BYMINUTE=0", datetime(2026, 6, 30, 9)),
        ("FREQ=DAILY;BYHOUR=9,17;BYMINUTE=0;BYSETPOS=2", datetime(2026, 6, 1, 17)),
        ("FREQ=DAILY;INTERVAL=14;BYDAY=TH;BYHOUR=9;BYMINUTE=0", datetime(2026, 6, 4, 9)),
        ("FREQ=YEARLY;INTERVAL=3;BYMONTH=2;BYMONTHDAY=29;BYHOUR=9;BYMINUTE=0", datetime(2032, 2, 29, 9)),
        ("FREQ=MONTHLY;INTERVAL=5;BYMONTH=3;BYHOUR=9;BYMINUTE=0", datetime(2030, 3, 1, 9)),
    ],
)
def test_rare_rrules_are_accepted(text: str, expected: datetime) -> None:
    schedule = CalendarSchedule(rrule=text, anchor=ANCHOR)
    validate_schedule(schedule, "UTC")
    assert next_after(schedule, "UTC", datetime(2026, 6, 1, tzinfo=UTC)) == expected.replace(tzinfo=UTC)


def test_every_day_a_month_can_have_falls_on_every_weekday_within_the_400_year_cycle() -> None:
    """Why weekdays never make a rule impossible: the Gregorian calendar repeats every 400 years, and within that
    cycle every (month, day) that exists, February 29 included, falls on each of the seven weekdays."""
    seen: dict[tuple[int, int], set[int]] = {}
    day = date(2000, 1, 1)
    while day.year < 2400:
        seen.setdefault((day.month, day.day), set()).add(day.weekday())
        day += timedelta(days=1)
    assert len(seen) == 366
    assert all(weekdays == set(range(7)) for weekdays in seen.values())


@pytest.mark.parametrize(
    ("fields", "after", "expected"),
    [
        # Feb 29 on a Monday: 28 years apart, but 40 across 2100 (not a leap year).
        ({"months": (2,), "days_of_month": (29,), "weekdays": (1,)}, datetime(2026, 1, 1), datetime(2044, 2, 29, 9)),
        ({"months": (2,), "days_of_month": (29,), "weekdays": (1,)}, datetime(2072, 3, 1), datetime(2112, 2, 29, 9)),
        ({"days_of_month": (31,), "weekdays": (5,)}, datetime(2026, 12, 5), datetime(2027, 12, 31, 9)),
        ({"days_of_month": (-1,), "months": (2,), "weekdays": (7,)}, datetime(2027, 3, 1), datetime(2032, 2, 29, 9)),
    ],
)
def test_rare_rules_find_their_next_day_quickly(fields: dict[str, object], after: datetime, expected: datetime) -> None:
    cpu = time.thread_time()
    assert next_after(rule(time="09:00", **fields), "UTC", after.replace(tzinfo=UTC)) == expected.replace(tzinfo=UTC)
    assert time.thread_time() - cpu < UNBOUNDED_SEARCH_CPU


def test_many_excluded_days_are_skipped_within_the_bound() -> None:
    excluded = tuple(date(2027, 1, 1) + timedelta(days=n) for n in range(3000))
    cpu = time.thread_time()
    found = next_after(rule(time="09:00", exclude_dates=excluded), "UTC", datetime(2027, 1, 1, tzinfo=UTC))
    assert found == datetime(2027, 1, 1, 9, tzinfo=UTC) + timedelta(days=3000)
    assert time.thread_time() - cpu < UNBOUNDED_SEARCH_CPU


def test_an_rrule_until_in_utc_ends_at_that_instant_in_the_jobs_zone() -> None:
    schedule = CalendarSchedule(rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0;UNTIL=20300101T000000Z", anchor=ANCHOR)
    validate_schedule(schedule, "America/New_York")
    # 2030-01-01T00:00Z is 2029-12-31 19:00 in New York: the 09:00 of that day is the last one.
    last = next_after(schedule, "America/New_York", datetime(2029, 12, 30, 15, tzinfo=UTC))
    assert last == datetime(2029, 12, 31, 14, tzinfo=UTC)
    assert next_after(schedule, "America/New_York", last) is None
    # In Tokyo the same UNTIL is 09:00 on January 1st: that run is the last (UNTIL is inclusive).
    tokyo = next_after(schedule, "Asia/Tokyo", datetime(2029, 12, 31, 1, tzinfo=UTC))
    assert tokyo == datetime(2030, 1, 1, tzinfo=UTC)
    assert next_after(schedule, "Asia/Tokyo", tokyo) is None


SEVEN_YEARS = datetime(2033, 1, 1)
# Two year steps and a leap day. Walking a rule that fires every day for seven years takes seconds, so the unit tier
# walks those this far and the whole suite (marker `slow`) the seven years.
PAST_A_LEAP_DAY = datetime(2028, 3, 2)
EVERY_DAY = ("FREQ=DAILY;BYHOUR=9;BYMINUTE=30", "FREQ=DAILY")


@pytest.mark.parametrize(
    ("text", "end"),
    [
        *(pytest.param(text, PAST_A_LEAP_DAY, id=f"{text}-to-2028") for text in EVERY_DAY),
        *(pytest.param(text, SEVEN_YEARS, id=text, marks=pytest.mark.slow) for text in EVERY_DAY),
        *(
            pytest.param(text, SEVEN_YEARS, id=text)
            for text in (
                "FREQ=DAILY;BYDAY=MO,FR;BYHOUR=9,17;COUNT=7",
                "FREQ=DAILY;BYDAY=1MO;BYMONTH=3,4",
                "FREQ=DAILY;BYMONTHDAY=-1,15;UNTIL=20270501T000000",
                "FREQ=DAILY;BYWEEKNO=1,20;WKST=SU",
                "FREQ=DAILY;BYYEARDAY=1,-1;BYHOUR=6",
                "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29\nEXDATE:20280229T101500",
            )
        ),
    ],
)
def test_daily_rrules_walked_a_year_per_step_give_the_same_runs(text: str, end: datetime) -> None:
    start = datetime(2026, 1, 1, 10, 15)
    schedule = CalendarSchedule(rrule=text, anchor=start.replace(tzinfo=UTC))
    expected = list(rrulestr(text, dtstart=start, forceset=True).between(start, end, inc=True))
    found = runs(schedule, "UTC", start.replace(tzinfo=UTC) - timedelta(seconds=1), end.replace(tzinfo=UTC))
    assert found == [t.replace(tzinfo=UTC) for t in expected]


def test_the_next_ten_runs_of_a_rare_daily_rrule_take_little_cpu() -> None:
    schedule = CalendarSchedule(rrule="FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=9", anchor=ANCHOR)
    cpu = time.thread_time()
    found = runs(schedule, "UTC", ANCHOR, datetime(2200, 1, 1, tzinfo=UTC))
    assert time.thread_time() - cpu < UNBOUNDED_SEARCH_CPU
    assert found[:3] == [datetime(y, 2, 29, 9, tzinfo=UTC) for y in (2044, 2072, 2112)]
