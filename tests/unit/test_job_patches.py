"""Patches of a job's retry policy and task: examples, and properties against a model (a patch replaces the fields
it gives, with the backoff and cap rules; patches of unrelated fields commute; decided through a ChangeJob, a patch
changes the loaded job's policy and nothing else)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET, UnsetType

from shared.contracts.jobs import JobUpdated, RetryPolicy, TaskSpec
from shared.contracts.schedules import CronSchedule
from shared.domain.errors import ValidationFailed
from shared.domain.job_commands import ChangeJob, CreateJob, JobDraft
from shared.domain.job_decisions import decide
from shared.domain.job_patches import JobChanges, RetryPatch, TaskPatch

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
BACKOFFS = ("exponential", "linear", "fixed")
# Fields a patch changes together: a base delay may raise the cap, `growing` decides the backoff.
GROUPS: tuple[tuple[str, ...], ...] = (
    ("max_attempts",),
    ("base_delay_seconds", "max_delay_seconds"),
    ("backoff", "growing"),
    ("jitter",),
)
SETTINGS = settings(max_examples=100, deadline=None)

delays = st.floats(min_value=0, max_value=604_800, allow_nan=False)
policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    base_delay_seconds=delays,
    backoff=st.sampled_from(BACKOFFS),
    jitter=st.floats(0, 1),
    max_delay_seconds=delays,
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "max_attempts": st.integers(1, 20),
    "base_delay_seconds": delays,
    "max_delay_seconds": delays,
    "backoff": st.sampled_from(BACKOFFS),
    "growing": st.booleans(),
    "jitter": st.floats(0, 1),
}


@st.composite
def patches(draw: st.DrawFn, groups: tuple[tuple[str, ...], ...] = GROUPS) -> RetryPatch:
    """A patch of some fields of the given groups (never both `backoff` and `growing`: no surface sends both)."""
    values: dict[str, Any] = {}
    for group in groups:
        for name in group:
            if name == "growing" and "backoff" in values:
                continue
            if draw(st.booleans()):
                values[name] = draw(VALUES[name])
    return RetryPatch(**values)


def model(patch: RetryPatch, policy: RetryPolicy) -> RetryPolicy:
    """What a patch should do, field by field."""
    out = msgspec.structs.asdict(policy)
    for name in ("max_attempts", "base_delay_seconds", "backoff", "jitter", "max_delay_seconds"):
        if not isinstance(value := getattr(patch, name), UnsetType):
            out[name] = value
    if patch.growing is False:
        out["backoff"] = "fixed"
    if patch.growing is True and policy.backoff == "fixed":
        out["backoff"] = "exponential"
    if not isinstance(patch.base_delay_seconds, UnsetType) and isinstance(patch.max_delay_seconds, UnsetType):
        out["max_delay_seconds"] = max(out["max_delay_seconds"], out["base_delay_seconds"])
    return RetryPolicy(**out)


def test_retry_patch_examples() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_seconds=10, backoff="linear", jitter=0.3, max_delay_seconds=600)
    assert RetryPatch(growing=True).applied_to(policy).backoff == "linear"
    assert RetryPatch(growing=False).applied_to(policy).backoff == "fixed"
    assert RetryPatch(growing=True).applied_to(RetryPolicy(backoff="fixed")).backoff == "exponential"
    assert RetryPatch(base_delay_seconds=900).applied_to(policy).max_delay_seconds == 900
    assert RetryPatch(base_delay_seconds=900, max_delay_seconds=300).applied_to(policy).max_delay_seconds == 300
    assert RetryPatch().applied_to(policy) == policy
    # Only a base delay given raises the cap (a policy given whole through the other surface may have it lower).
    low_cap = RetryPolicy(base_delay_seconds=100, max_delay_seconds=10)
    assert RetryPatch(max_attempts=2).applied_to(low_cap).max_delay_seconds == 10


@SETTINGS
@given(policies, patches())
def test_a_retry_patch_replaces_the_fields_it_gives(policy: RetryPolicy, patch: RetryPatch) -> None:
    assert patch.applied_to(policy) == model(patch, policy)


@SETTINGS
@given(policies, st.data())
def test_patches_of_unrelated_fields_commute(policy: RetryPolicy, data: st.DataObject) -> None:
    groups = data.draw(st.permutations(GROUPS))
    split = data.draw(st.integers(0, len(groups)))
    first = data.draw(patches(tuple(groups[:split])))
    second = data.draw(patches(tuple(groups[split:])))
    assert second.applied_to(first.applied_to(policy)) == first.applied_to(second.applied_to(policy))


@SETTINGS
@given(policies, patches())
def test_a_change_decided_with_a_patch_changes_the_loaded_policy_and_nothing_else(
    policy: RetryPolicy, patch: RetryPatch
) -> None:
    draft = JobDraft(name="p", schedule=CronSchedule(expression="0 2 * * *"), retry=policy)
    latest = decide(None, CreateJob(account_id=uuid.uuid4(), draft=draft), NOW)
    assert latest is not None
    event = decide(latest, ChangeJob(JobChanges(retry=patch)), NOW + timedelta(seconds=1))
    expected = patch.applied_to(policy)
    if expected == policy:
        assert event is None
        return
    assert isinstance(event, JobUpdated) and event.changed == ("retry",)
    assert event.job == msgspec.structs.replace(latest.job, retry=expected, updated_at=event.occurred_at)


names = st.one_of(st.none(), st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8}){0,2}", fullmatch=True))
arguments = st.tuples(st.integers()) | st.just(())
keywords = st.dictionaries(st.sampled_from("abc"), st.integers(), max_size=2)
tasks = st.one_of(st.none(), st.builds(TaskSpec, name=names.filter(bool), args=arguments, kwargs=keywords))


@SETTINGS
@given(
    tasks, st.one_of(st.just(UNSET), names), st.one_of(st.just(UNSET), arguments), st.one_of(st.just(UNSET), keywords)
)
def test_a_task_patch_replaces_the_fields_it_gives(task: TaskSpec | None, name: Any, args: Any, kwargs: Any) -> None:
    patch = TaskPatch(name=name, args=args, kwargs=kwargs)
    kept_name = task.name if task is not None and name is UNSET else (None if name is UNSET else name)
    kept_args = (task.args if task else ()) if args is UNSET else args
    kept_kwargs = (task.kwargs if task else {}) if kwargs is UNSET else kwargs
    if kept_name is None and (kept_args or kept_kwargs):
        with pytest.raises(ValidationFailed):
            patch.applied_to(task)
        return
    expected = None if kept_name is None else TaskSpec(name=kept_name, args=kept_args, kwargs=kept_kwargs)
    assert patch.applied_to(task) == expected


def test_task_patch_examples() -> None:
    task = TaskSpec(name="tasks.a", args=(1,), kwargs={"k": 1})
    assert TaskPatch(args=(2,)).applied_to(task) == TaskSpec(name="tasks.a", args=(2,), kwargs={"k": 1})
    assert TaskPatch(name=None, args=(), kwargs={}).applied_to(task) is None
    assert TaskPatch(name="tasks.b").applied_to(None) == TaskSpec(name="tasks.b")
    with pytest.raises(ValidationFailed) as orphan:
        TaskPatch(name=None).applied_to(task)  # its arguments would stay without a task
    assert orphan.value.field == "task"
