"""Partial changes of a job: which fields to change, and patches of its retry policy and task that are applied to
the job as it is when the change is decided (never rebuilt at an edge from what a read model showed)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from shared.contracts.jobs import FlowControl, MisfirePolicy, RetryPolicy, TaskSpec
from shared.contracts.schedules import Exclusions, Schedule
from shared.domain.errors import ValidationFailed

_RETRY_FIELDS = ("max_attempts", "base_delay_seconds", "backoff", "jitter", "max_delay_seconds")


@dataclass(frozen=True, slots=True)
class RetryPatch:
    """Fields of a job's retry policy to change, applied to the policy the job has when the change is decided.

    `growing` is the NEXUS surface's yes/no backoff: True keeps a growing backoff (linear stays linear) or makes a
    fixed one exponential; False makes it fixed. A base delay given above the policy's cap raises the cap to it
    (unless the patch sets the cap too), so the delay asked for is the delay waited.
    """

    max_attempts: int | UnsetType = UNSET
    base_delay_seconds: float | UnsetType = UNSET
    backoff: Literal["exponential", "linear", "fixed"] | UnsetType = UNSET
    growing: bool | UnsetType = UNSET
    jitter: float | UnsetType = UNSET
    max_delay_seconds: float | UnsetType = UNSET

    def applied_to(self, policy: RetryPolicy) -> RetryPolicy:
        """The policy with this patch's fields changed."""
        values: dict[str, Any] = {
            name: getattr(self, name) for name in _RETRY_FIELDS if not isinstance(getattr(self, name), UnsetType)
        }
        if self.growing is False:
            values["backoff"] = "fixed"
        elif self.growing is True and policy.backoff == "fixed":
            values["backoff"] = "exponential"
        patched = msgspec.structs.replace(policy, **values)
        raises_cap = "base_delay_seconds" in values and "max_delay_seconds" not in values
        if raises_cap and patched.base_delay_seconds > patched.max_delay_seconds:
            patched = msgspec.structs.replace(patched, max_delay_seconds=patched.base_delay_seconds)
        return patched


@dataclass(frozen=True, slots=True)
class TaskPatch:
    """Fields of a job's task to change, applied to the task the job has when the change is decided.

    A `name` of None removes the task (its arguments must then be empty).
    """

    name: str | UnsetType | None = UNSET
    args: tuple[Any, ...] | UnsetType = UNSET
    kwargs: dict[str, Any] | UnsetType = UNSET

    def applied_to(self, task: TaskSpec | None) -> TaskSpec | None:
        """The task with this patch's fields changed (None: no task)."""
        name = task.name if task is not None and isinstance(self.name, UnsetType) else self.name
        args = (task.args if task is not None else ()) if isinstance(self.args, UnsetType) else self.args
        kwargs = (task.kwargs if task is not None else {}) if isinstance(self.kwargs, UnsetType) else self.kwargs
        if isinstance(name, UnsetType) or name is None:
            if args or kwargs:
                raise ValidationFailed("task_args and task_kwargs need a task_name", "task")
            return None
        return TaskSpec(name=name, args=tuple(args), kwargs=kwargs)


@dataclass(frozen=True, slots=True)
class JobChanges:
    """Fields of a job to change (named as in JobState); UNSET leaves a field as it is. A retry policy or task
    given whole replaces the job's; a patch changes only its own fields of it."""

    name: str | UnsetType = UNSET
    schedule: Schedule | UnsetType = UNSET
    type: int | UnsetType = UNSET
    timezone: str | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    task: TaskSpec | TaskPatch | UnsetType | None = UNSET
    retry: RetryPolicy | RetryPatch | UnsetType = UNSET
    timeout_seconds: float | UnsetType | None = UNSET
    misfire: MisfirePolicy | UnsetType = UNSET
    overlap: Literal["allow", "skip", "queue_one"] | UnsetType = UNSET
    jitter_seconds: float | UnsetType = UNSET
    start_at: datetime | UnsetType | None = UNSET
    end_at: datetime | UnsetType | None = UNSET
    exclusions: Exclusions | UnsetType | None = UNSET
    callback_url: str | UnsetType | None = UNSET
    failure_callback_url: str | UnsetType | None = UNSET
    flow_control: FlowControl | UnsetType | None = UNSET
    priority: int | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    tags: tuple[str, ...] | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET

    def given(self) -> dict[str, Any]:
        """The fields given, by name, in JOB_FIELDS' order."""
        return {f: getattr(self, f) for f in JOB_FIELDS if not isinstance(getattr(self, f), UnsetType)}


# Every changeable field, in JobChanges' order (the order `changed` lists them in events).
JOB_FIELDS = tuple(f.name for f in fields(JobChanges))


@dataclass(frozen=True, slots=True)
class WebhookChanges:
    """Fields of a webhook to change; UNSET leaves a field as it is, None clears a nullable one."""

    url: str | UnsetType = UNSET
    method: str | UnsetType = UNSET
    headers: dict[str, str] | UnsetType | None = UNSET
    query_params: dict[str, str] | UnsetType | None = UNSET
    body_template: str | UnsetType | None = UNSET
    content_type: str | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET

    def given(self) -> dict[str, Any]:
        """The fields given, by name, as WebhookSpec names them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not isinstance(getattr(self, f.name), UnsetType)}
