"""The read side written once: a read-model row decodes into one JobRecord, and each surface maps that record to
what it shows (services/api/core/job_queries.py, rest/mapping.py, nexus/read_models.py, ui/job_view.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest

from services.api.core.execution_queries import ExecutionRecord
from services.api.core.job_queries import job_record
from services.api.nexus.read_models import nexus_execution, nexus_job
from services.api.rest.mapping import execution_out, job_out
from services.api.ui.job_view import job_view

pytestmark = pytest.mark.unit

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def row(schedule: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A jobs row as the core's SELECT returns it (JSON columns as the driver decodes them)."""
    return {
        "id": uuid.uuid4(),
        "account_id": uuid.uuid4(),
        "number": 42,
        "name": "nightly",
        "description": None,
        "type": 1,
        "schedule": schedule,
        "timezone": "Europe/Paris",
        "enabled": True,
        "task": {"name": "reports.build", "args": [1], "kwargs": {"k": "v"}},
        "retry": {"max_attempts": 4, "base_delay_seconds": 30.0, "backoff": "fixed"},
        "timeout_seconds": None,
        "misfire": {"policy": "skip", "grace_seconds": None},
        "overlap": "skip",
        "jitter_seconds": 2.0,
        "start_at": None,
        "end_at": None,
        "exclusions": None,
        "callback_url": None,
        "failure_callback_url": None,
        "flow_control": None,
        "priority": 7,
        "tags": ["a", "b"],
        "metadata": {"team": "x"},
        "created_by": "me",
        "created_at": CREATED,
        "updated_at": CREATED,
        "last_run_at": None,
        "next_run_at": CREATED,
        "status": "pending",
    } | changes


SCHEDULES = [
    {"kind": "cron", "expression": "0 2 * * *"},
    {"kind": "interval", "every_seconds": 90.0, "anchor": "2026-01-01T00:00:00Z"},
    {"kind": "date", "at": "2030-03-31T07:15:00Z"},
    {"kind": "calendar", "rrule": "FREQ=DAILY", "anchor": "2026-01-01T00:00:00Z"},
]


# Each kind's NEXUS fields: the one of its kind set, the others null.
KIND_FIELDS = [
    {"cron_expression": "0 2 * * *"},
    {"interval_seconds": 90, "interval_anchor": datetime(2026, 1, 1, tzinfo=UTC)},
    {"scheduled_time": datetime(2030, 3, 31, 7, 15, tzinfo=UTC)},
    {"calendar_rule": "FREQ=DAILY"},
]
NULLS = dict.fromkeys(("cron_expression", "interval_seconds", "interval_anchor", "scheduled_time", "calendar_rule"))


@pytest.mark.parametrize(
    ("schedule", "fields"), list(zip(SCHEDULES, KIND_FIELDS, strict=True)), ids=[s["kind"] for s in SCHEDULES]
)
def test_nexus_shows_a_record_in_its_words(schedule: dict[str, Any], fields: dict[str, Any]) -> None:
    raw = row(schedule)
    job = nexus_job(job_record(cast(asyncpg.Record, raw)))
    assert {name: getattr(job, name) for name in NULLS} == NULLS | fields
    assert (job.id, job.uuid, job.job_type, job.is_active, job.status) == (
        42,
        str(raw["id"]),
        schedule["kind"],
        True,
        "pending",
    )
    assert (job.task_name, job.task_args, job.task_kwargs) == ("reports.build", [1], {"k": "v"})
    assert (job.max_retries, job.retry_delay, job.retry_backoff, job.jitter_seconds) == (3, 30, False, 2)
    assert (type(job.retry_delay), job.misfire_policy.policy, job.overlap_policy, job.tags) == (
        int,
        "skip",
        "skip",
        ["a", "b"],
    )


def test_the_primary_api_shows_the_record_in_its_words() -> None:
    record = job_record(cast(asyncpg.Record, row(SCHEDULES[0])))
    out = job_out(record)
    assert (out.schedule, out.type, out.overlap_policy, out.timezone) == ("0 2 * * *", 1, "skip", "Europe/Paris")
    assert (out.retry_policy.max_attempts, out.retry_policy.backoff_seconds, out.retry_policy.backoff_type) == (
        4,
        30.0,
        "fixed",
    )
    assert (out.misfire_policy.policy, out.next_run_at) == ("skip", CREATED)


def test_the_dashboard_shows_the_record_with_its_schedule() -> None:
    record = job_record(cast(asyncpg.Record, row(SCHEDULES[1], retry={})))
    view = job_view(record)
    assert (view.id, view.uuid, view.job_type, view.schedule) == (42, str(record.id), "interval", record.schedule)
    assert (view.max_retries, view.retry_backoff, view.jitter_seconds, view.tags) == (2, True, 2, ("a", "b"))


def test_an_execution_is_shown_by_each_api_surface() -> None:
    execution = ExecutionRecord(
        id=uuid.uuid4(),
        number=9,
        job_id=uuid.uuid4(),
        webhook_id=None,
        occurrence_id="o",
        nominal_time=CREATED,
        status="timed_out",
        attempt=2,
        started_at=CREATED,
        finished_at=CREATED,
        duration_ms=1500,
        response_code=None,
        response_body=None,
        result=None,
        error="slow",
        traceback=None,
        worker_id="w",
        created_at=CREATED,
        retry_at=None,
        dead_lettered_at=None,
    )
    out = execution_out(execution)
    assert (out.scheduled_at, out.status, out.attempt, out.duration_ms) == (CREATED, "timed_out", 2, 1500)
    shown = nexus_execution(execution, 9, 42)
    assert (shown.id, shown.job_id, shown.status, shown.raw_status) == (9, 42, "failed", "timed_out")
    assert (shown.duration_seconds, shown.is_retry, shown.task_id) == (2, True, str(execution.id))
