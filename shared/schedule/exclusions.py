"""A job's exclusions: which of its schedule's occurrences it does not have (see `Exclusions`).

Matching is on the wall-clock time at which an occurrence fires in the job's time zone, after the daylight-saving
rules of `shared.schedule.wallclock`: on a spring-forward day a 02:30 occurrence fires at 03:00 and is matched as
03:00; on a fall-back day a repeated time fires once, the first time, and is matched once.
"""

from __future__ import annotations

from datetime import datetime

from shared.contracts.schedules import Exclusions
from shared.schedule.errors import InvalidCronExpressionError, InvalidScheduleError
from shared.schedule.occurrences import matches_cron, validate_cron
from shared.schedule.wallclock import to_wall, zone

MAX_DATES = 1000
MAX_RULES = 20
# Consecutive excluded occurrences after which a job is taken never to fire again (so exclusions that remove every
# occurrence cannot keep a ticker walking its schedule).
MAX_SKIPPED = 10_000


def check_exclusions(exclusions: Exclusions) -> None:
    """Raise InvalidScheduleError unless the exclusions are within their limits and every rule parses."""
    if len(exclusions.dates) > MAX_DATES:
        raise InvalidScheduleError(f"at most {MAX_DATES} excluded dates, got {len(exclusions.dates)}")
    if len(exclusions.rules) > MAX_RULES:
        raise InvalidScheduleError(f"at most {MAX_RULES} exclusion rules, got {len(exclusions.rules)}")
    for rule in exclusions.rules:
        try:
            validate_cron(rule)
        except InvalidCronExpressionError as exc:
            raise InvalidScheduleError(f"exclusion rule: {exc}") from exc


def excluded(instant: datetime, timezone: str, exclusions: Exclusions | None) -> bool:
    """Whether the occurrence at `instant` (aware) is one the job does not have."""
    if exclusions is None or not (exclusions.dates or exclusions.rules):
        return False
    wall = to_wall(instant, zone(timezone))
    return wall.date() in exclusions.dates or any(matches_cron(rule, wall) for rule in exclusions.rules)
