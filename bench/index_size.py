"""Workload 7, index: the ticker's compact index alone, built from N jobs' timing (10,000,000 with the flag).

No servers: what one ticker replica holds per job and how long it takes to index them, the part of the sizing
(docs/scaling.md) that grows with the number of schedules. Each job's latest event is decoded from its JSON message
as the ticker decodes it (the timing view), then indexed as a taken-over partition's job is (from a watermark), with
a mix of schedules like a real store's: most on a handful of cron expressions, some intervals, dates and calendars,
spread over a thousand accounts. Memory is the process's resident growth over the build, per job; then the next
minute's occurrences are popped at once (a minute boundary's burst), and the time per occurrence reported.
"""

from __future__ import annotations

import gc
import random
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

from services.ticker.schedule_index import ScheduleIndex
from shared.contracts.codec import decode_job_timing, encode
from shared.contracts.jobs import JobCreated, JobState, WebhookSpec
from shared.contracts.schedules import CalendarRule, CalendarSchedule, CronSchedule, DateSchedule, IntervalSchedule

ACCOUNTS = 1000


@dataclass(frozen=True, slots=True)
class IndexSize:
    jobs: int
    build_seconds: float
    microseconds_per_job: float
    resident_mib: float
    bytes_per_job: int
    first_minute_popped: int
    pop_microseconds_per_occurrence: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _messages(jobs: int, now: datetime) -> Any:
    """Each job's JobCreated message, made one at a time (ten million would not fit in memory at once)."""
    rng = random.Random(7)  # noqa: S311 (a workload, not a secret)
    accounts = [uuid.uuid4() for _ in range(ACCOUNTS)]
    hook = WebhookSpec(id=uuid.uuid4(), url="https://example.com/hook", created_at=now, updated_at=now)
    crons = ["* * * * *", "*/5 * * * *", "0 * * * *", "0 9 * * 1-5", "30 2 * * *", "0 0 1 * *"]
    for i in range(jobs):
        pick = rng.random()
        if pick < 0.6:
            schedule: Any = CronSchedule(expression=crons[i % len(crons)])
        elif pick < 0.8:
            schedule = IntervalSchedule(every_seconds=rng.choice([30.0, 300.0, 3600.0]), anchor=now)
        elif pick < 0.9:
            schedule = DateSchedule(at=now + timedelta(seconds=rng.randrange(60, 86_400 * 30)))
        else:
            schedule = CalendarSchedule(rule=CalendarRule(weekdays=(1, 3, 5), times=("08:00", "17:30")), anchor=now)
        state = JobState(
            id=uuid.uuid4(), account_id=rng.choice(accounts), name=f"job {i}", type=1, schedule=schedule,
            webhooks=(hook,), created_at=now, updated_at=now,
        )  # fmt: skip
        created = JobCreated(
            event_id=uuid.uuid4(), job_id=state.id, account_id=state.account_id, version=1, occurred_at=now,
            job=state, next_run_at=None,
        )  # fmt: skip
        yield encode(created)


def run_index_size(jobs: int) -> IndexSize:
    now = datetime.now(UTC).replace(microsecond=0)
    process = psutil.Process()
    gc.collect()
    index = ScheduleIndex()
    before = process.memory_info().rss
    spent = 0.0
    for message in _messages(jobs, now):  # only the decoding and the indexing are timed, not making the messages
        began = time.perf_counter()
        event = decode_job_timing(message)
        index.apply(event, now, catch_up_from=now)
        spent += time.perf_counter() - began
    gc.collect()
    grown = process.memory_info().rss - before
    began = time.perf_counter()
    popped = index.pop_due(now, timedelta(seconds=60), now, horizon=now + timedelta(seconds=60))
    popping = time.perf_counter() - began
    return IndexSize(
        jobs=jobs,
        build_seconds=round(spent, 1),
        microseconds_per_job=round(spent / jobs * 1e6, 2),
        resident_mib=round(grown / 2**20, 1),
        bytes_per_job=round(grown / jobs),
        first_minute_popped=len(popped),
        pop_microseconds_per_occurrence=round(popping / max(1, len(popped)) * 1e6, 2),
    )
