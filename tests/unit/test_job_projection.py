"""The projection of JOBS events: the rows each event type writes to the jobs and webhooks tables."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

import msgspec
import pytest

from services.projector.batched_writes import Step, Write
from services.projector.job_projection import job_row, job_step, webhook_row
from shared.contracts.jobs import (
    FlowControl,
    JobCreated,
    JobDeleted,
    JobEvent,
    JobPaused,
    JobResumed,
    JobState,
    JobUpdated,
    MisfirePolicy,
    RetryPolicy,
    TaskSpec,
    WebhookAdded,
    WebhookDisabled,
    WebhookRemoved,
    WebhookSpec,
    WebhookUpdated,
)
from shared.contracts.schedules import Exclusions, IntervalSchedule
from tests.factories import NOW, job_state

pytestmark = pytest.mark.unit

LATER = NOW + timedelta(hours=1)
NEXT_RUN = NOW + timedelta(minutes=5)


def webhook(url: str = "https://example.com/hook", **fields: Any) -> WebhookSpec:
    values: dict[str, Any] = {"id": uuid.uuid4(), "url": url, "created_at": NOW, "updated_at": NOW}
    return WebhookSpec(**(values | fields))


def event(kind: type[JobEvent], state: JobState, version: int, **fields: Any) -> JobEvent:
    return kind(
        event_id=uuid.uuid4(),
        job_id=state.id,
        account_id=state.account_id,
        version=version,
        occurred_at=state.updated_at,
        job=state,
        next_run_at=NEXT_RUN,
        **fields,
    )


def columns(write: Write) -> list[str]:
    """The column list of the write's INSERT, in order."""
    match = re.search(r"INSERT INTO \w+ \(([^)]*)\)", write.sql)
    assert match is not None, write.sql
    return [name.strip() for name in match.group(1).split(",")]


def rows(step: Step, table: str) -> list[dict[str, Any]]:
    """The rows the step upserts into `table`, by column."""
    return [dict(zip(columns(w), w.args, strict=True)) for w in step.writes if f"INSERT INTO {table} " in w.sql]


def kept_webhooks(step: Step) -> list[uuid.UUID]:
    """The ids of the job's webhooks that stay; the step deletes the job's others."""
    (write,) = [w for w in step.writes if w.sql.startswith("DELETE FROM webhooks") and "ANY" in w.sql]
    assert write.args[0] == step.key
    return list(write.args[1])


def test_the_row_values_line_up_with_the_insert_columns() -> None:
    state = job_state(webhooks=(webhook(),))
    step = job_step(event(JobCreated, state, 1), 7)
    job, hook = step.writes
    assert columns(job) == list(job_row(event(JobCreated, state, 1), 7))
    assert columns(hook) == list(webhook_row(state, state.webhooks[0]))
    for write in (job, hook):  # the set-based form: the same columns, taken in the same order from unnest
        assert write.many is not None
        assert columns(Write(write.many.sql, ())) == columns(write)
        match = re.search(r"\) AS u\(([^)]*)\)", write.many.sql)
        assert match is not None and [c.strip() for c in match.group(1).split(",")] == columns(write)


def test_a_created_job_is_a_row_with_every_field_of_its_state_and_its_stream_sequence_as_number() -> None:
    state = job_state(
        schedule=IntervalSchedule(every_seconds=90, anchor=NOW),
        timezone="Europe/Berlin",
        task=TaskSpec(name="reports.build", args=(1, "a"), kwargs={"k": True}),
        retry=RetryPolicy(max_attempts=5, base_delay_seconds=2, backoff="linear"),
        timeout_seconds=12.5,
        priority=9,
        misfire=MisfirePolicy(policy="skip"),
        start_at=NOW,
        end_at=LATER,
        jitter_seconds=3.0,
        overlap="queue_one",
        exclusions=Exclusions(dates=(date(2026, 12, 25),), rules=("0 9 * * 1",)),
        callback_url="https://example.com/results",
        failure_callback_url="https://example.com/failures",
        flow_control=FlowControl(key="billing-api", parallelism=10, rate=100, period_seconds=60),
        description="d",
        tags=("a", "b"),
        metadata={"m": 1},
        created_by="me",
    )
    step = job_step(event(JobCreated, state, 1), 42)
    assert step.key == state.id
    (row,) = rows(step, "jobs")
    assert row == {
        "id": state.id,
        "account_id": state.account_id,
        "name": "n",
        "type": 1,
        "schedule": {"kind": "interval", "every_seconds": 90, "anchor": "2026-01-01T00:00:00Z"},
        "timezone": "Europe/Berlin",
        "enabled": True,
        "version": 1,
        "next_run_at": NEXT_RUN,
        "created_at": NOW,
        "updated_at": NOW,
        "number": 42,
        "kind": "interval",
        "task": {"name": "reports.build", "args": (1, "a"), "kwargs": {"k": True}},
        "retry": msgspec.to_builtins(state.retry),
        "priority": 9,
        "description": "d",
        "tags": ["a", "b"],
        "metadata": {"m": 1},
        "created_by": "me",
        "timeout_seconds": 12.5,
        "misfire": {"policy": "skip", "grace_seconds": None},
        "start_at": NOW,
        "end_at": LATER,
        "jitter_seconds": 3.0,
        "overlap": "queue_one",
        "exclusions": {"dates": ("2026-12-25",), "rules": ("0 9 * * 1",)},
        "callback_url": "https://example.com/results",
        "failure_callback_url": "https://example.com/failures",
        "flow_control": {"key": "billing-api", "parallelism": 10, "rate": 100, "period_seconds": 60},
    }
    # A job's first event: no webhooks, and none of an earlier state to remove.
    assert rows(step, "webhooks") == [] and not [w for w in step.writes if w.sql.startswith("DELETE")]


@pytest.mark.parametrize("kind", [JobUpdated, JobPaused, JobResumed])
def test_a_later_event_rewrites_the_row_but_never_its_number(kind: type[JobEvent]) -> None:
    state = job_state(enabled=kind is not JobPaused, at=NOW, name="renamed", task=None)
    (row,) = rows(job_step(event(kind, state, 4), 99), "jobs")
    assert (row["number"], row["version"], row["enabled"], row["name"], row["task"]) == (
        None,
        4,
        kind is not JobPaused,
        "renamed",
        None,
    )
    sql = job_step(event(kind, state, 4), 99).writes[0].sql
    assert "number = EXCLUDED" not in sql  # the number the insert gave stays


def test_an_older_or_repeated_job_event_does_not_overwrite_a_newer_row() -> None:
    sql = job_step(event(JobUpdated, job_state(), 3), 1).writes[0].sql
    assert "ON CONFLICT (id) DO UPDATE" in sql
    assert sql.rstrip().endswith("WHERE jobs.version < EXCLUDED.version")


def test_a_deleted_job_takes_its_webhooks_and_run_times_with_it() -> None:
    state = job_state(webhooks=(webhook(),))
    step = job_step(event(JobDeleted, state, 5), 9)
    assert step.key == state.id
    assert [(w.sql, w.args) for w in step.writes] == [
        ("DELETE FROM webhooks WHERE job_id = $1", (state.id,)),
        ("DELETE FROM jobs WHERE id = $1", (state.id,)),
        ("DELETE FROM job_runs WHERE job_id = $1", (state.id,)),
    ]


def test_an_added_webhook_is_upserted_with_every_field_and_the_others_are_kept() -> None:
    first = webhook()
    added = webhook(
        "https://example.com/other",
        method="PUT",
        headers={"X-A": "1"},
        query_params={"q": "v"},
        body_template='{"a": 1}',
        content_type="text/plain",
    )
    state = job_state(webhooks=(first, added))
    step = job_step(event(WebhookAdded, state, 2, webhook_id=added.id), 3)
    assert kept_webhooks(step) == [first.id, added.id]
    by_id = {row["id"]: row for row in rows(step, "webhooks")}
    assert by_id[added.id] == {
        "id": added.id,
        "job_id": state.id,
        "account_id": state.account_id,
        "url": "https://example.com/other",
        "method": "PUT",
        "headers": {"X-A": "1"},
        "query_params": {"q": "v"},
        "body_template": '{"a": 1}',
        "content_type": "text/plain",
        "created_at": NOW,
        "updated_at": NOW,
        "enabled": True,
        "disabled_reason": None,
    }
    assert by_id[first.id]["url"] == "https://example.com/hook"


def test_a_removed_webhook_is_deleted_by_leaving_it_out_of_the_kept_ones() -> None:
    kept, removed = webhook(), webhook()
    state = job_state(webhooks=(kept,))
    step = job_step(event(WebhookRemoved, state, 3, webhook_id=removed.id), 4)
    assert kept_webhooks(step) == [kept.id]
    assert [row["id"] for row in rows(step, "webhooks")] == [kept.id]


@pytest.mark.parametrize("kind", [WebhookDisabled, WebhookUpdated])
def test_a_disabled_or_changed_webhook_row_follows_the_state(kind: type[JobEvent]) -> None:
    hook = webhook(enabled=False, disabled_reason="410 Gone", updated_at=LATER)
    state = job_state(webhooks=(hook,), updated_at=LATER)
    extra: dict[str, Any] = {"webhook_id": hook.id} | ({"reason": "410 Gone"} if kind is WebhookDisabled else {})
    step = job_step(event(kind, state, 6, **extra), 8)
    (row,) = rows(step, "webhooks")
    assert (row["enabled"], row["disabled_reason"], row["updated_at"]) == (False, "410 Gone", LATER)
    (job,) = rows(step, "jobs")
    assert (job["version"], job["updated_at"]) == (6, LATER)
    assert "enabled = EXCLUDED.enabled, disabled_reason = EXCLUDED.disabled_reason" in step.writes[2].sql


def test_every_write_of_a_job_event_is_keyed_by_the_job_in_one_phase() -> None:
    state = job_state(webhooks=(webhook(), webhook()))
    steps = [job_step(event(kind, state, 2), 1) for kind in (JobCreated, JobUpdated, JobDeleted)]
    assert {(s.key, s.phase) for s in steps} == {(state.id, 0)}
    assert len(steps[0].writes) == 1 + 2  # job, each webhook (a new job has no other webhooks to delete)
    assert len(steps[1].writes) == 1 + 1 + 2  # job, the webhooks to delete, each webhook
