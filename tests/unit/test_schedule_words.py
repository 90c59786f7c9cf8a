"""Schedules in words and their next fire times with daylight-saving changes marked (the dashboard's job page)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from services.api.core.schedule_words import describe_schedule, next_fire_times
from shared.contracts.schedules import CalendarRule, CalendarSchedule, CronSchedule, DateSchedule, IntervalSchedule

pytestmark = pytest.mark.unit


def test_a_daily_cron_across_the_spring_change_is_marked_once() -> None:
    runs = next_fire_times(CronSchedule(expression="30 9 * * *"), "Europe/Paris", datetime(2027, 3, 25, tzinfo=UTC), 6)
    assert [r.at.strftime("%m-%d %H:%M %z") for r in runs] == [
        "03-25 09:30 +0100",
        "03-26 09:30 +0100",
        "03-27 09:30 +0100",
        "03-28 09:30 +0200",
        "03-29 09:30 +0200",
        "03-30 09:30 +0200",
    ]
    assert [r.offset_change for r in runs] == [None, None, None, "UTC+01:00 → UTC+02:00", None, None]


def test_an_autumn_change_before_the_first_run_is_marked_on_it() -> None:
    after = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 01:00 EDT, an hour before New York falls back
    runs = next_fire_times(CronSchedule(expression="0 9 * * *"), "America/New_York", after, 2)
    assert [r.offset_change for r in runs] == ["UTC-04:00 → UTC-05:00", None]


def test_fire_times_stop_at_the_end_of_the_window_and_start_at_its_start() -> None:
    schedule = IntervalSchedule(every_seconds=3600, anchor=datetime(2027, 1, 1, tzinfo=UTC))
    runs = next_fire_times(
        schedule,
        "UTC",
        datetime(2027, 1, 1, tzinfo=UTC),
        10,
        start_at=datetime(2027, 1, 1, 5, tzinfo=UTC),
        end_at=datetime(2027, 1, 1, 7, tzinfo=UTC),
    )
    assert [r.at.hour for r in runs] == [5, 6, 7]


def test_a_date_in_the_past_has_no_fire_times() -> None:
    assert next_fire_times(DateSchedule(at=datetime(2020, 1, 1, tzinfo=UTC)), "UTC", datetime.now(UTC), 10) == []


@pytest.mark.parametrize(
    ("schedule", "timezone", "words"),
    [
        (CronSchedule(expression="*/5 * * * *"), "UTC", "Every 5 minutes (UTC)"),
        (CronSchedule(expression="@hourly"), "UTC", "Every hour (UTC)"),
        (
            IntervalSchedule(every_seconds=5400, anchor=datetime(2027, 1, 1, 8, tzinfo=UTC)),
            "Asia/Tokyo",
            "Every 1 h 30 min, counted from 2027-01-01 17:00:00 JST",
        ),
        (DateSchedule(at=datetime(2027, 7, 1, 12, tzinfo=UTC)), "Europe/Paris", "Once, at 2027-07-01 14:00:00 CEST"),
        (
            CalendarSchedule(
                rule=CalendarRule(weekdays=(1, 7), times=("09:00", "17:30"), exclude_dates=(date(2027, 1, 4),)),
                anchor=datetime(2027, 1, 1, tzinfo=UTC),
            ),
            "UTC",
            "on Mon, Sun at 09:00, 17:30 except 2027-01-04 (UTC)",
        ),
        (
            CalendarSchedule(rule=CalendarRule(days_of_month=(1, -1)), anchor=datetime(2027, 1, 1, tzinfo=UTC)),
            "UTC",
            "on day 1, the last of the month at midnight (UTC)",
        ),
        (
            CalendarSchedule(rrule="FREQ=MONTHLY;BYDAY=-1FR", anchor=datetime(2027, 1, 1, tzinfo=UTC)),
            "UTC",
            "By the rule FREQ=MONTHLY;BYDAY=-1FR (UTC)",
        ),
    ],
)
def test_every_kind_of_schedule_in_words(schedule: object, timezone: str, words: str) -> None:
    assert describe_schedule(schedule, timezone) == words  # type: ignore[arg-type]


def test_times_a_zone_cannot_show_are_shown_in_utc_not_raised() -> None:
    """Jobs stored before such times were refused must not break the pages that list them."""
    far = DateSchedule(at=datetime(9999, 12, 31, 23, tzinfo=UTC))
    assert describe_schedule(far, "Asia/Tokyo") == "Once, at 9999-12-31 23:00:00 UTC"
    assert next_fire_times(far, "Asia/Tokyo", datetime(2027, 1, 1, tzinfo=UTC), 10) == []
    early = IntervalSchedule(every_seconds=60, anchor=datetime(1, 1, 1, tzinfo=UTC))
    assert describe_schedule(early, "America/New_York").startswith("Every 1 min, counted from ")


def test_the_next_ten_runs_of_an_old_daily_rrule_are_found_in_one_walk() -> None:
    """The job page and the form's preview list ten runs: each used to walk the RRULE again from its start, so
    a daily rule 20 years old took 10 walks of 7,300 days (over 100 ms of CPU on the api's loop)."""
    schedule = CalendarSchedule(rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0", anchor=datetime(2006, 1, 1, tzinfo=UTC))
    after = datetime(2026, 6, 1, tzinfo=UTC)
    cpu = time.thread_time()
    runs = next_fire_times(schedule, "Europe/Paris", after, 10)
    assert time.thread_time() - cpu < 0.05
    assert [r.at for r in runs] == [datetime(2026, 6, d, 7, tzinfo=UTC) for d in range(1, 11)]
