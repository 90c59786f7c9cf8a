"""Field types every surface accepts or shows the same way: their bounds (the job input's among them, which NEXUS and
the dashboard share), and the misfire policy's body, which the primary API and NEXUS share."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from shared.contracts.jobs import FlowControl, MisfirePolicy
from shared.contracts.schedules import AfterSchedule, ChainOutcome, Exclusions, Schedule
from shared.schedule.exclusions import MAX_DATES, MAX_RULES

# Postgres text and jsonb cannot hold NUL, so no string may carry one into the read models.
NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
TimeZone = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL, examples=["UTC", "America/New_York"])
]
HttpMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH"]
ExecutionStatus = Literal["queued", "running", "success", "failure", "timed_out", "dead_letter", "missed", "skipped"]
Overlap = Literal["allow", "skip", "queue_one"]
JitterSeconds = Annotated[float, msgspec.Meta(ge=0, le=3600)]

JobKind = Literal["cron", "interval", "date", "calendar"]
Text = Annotated[str, msgspec.Meta(max_length=4000, pattern=NO_NUL)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
# A webhook's or a callback's URL (checked further by the job domain and the egress policy).
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=NO_NUL)]
# Tags are filtered as a comma-separated list, so a tag has no comma.
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^,\x00]+$")]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=50)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=10 * 365 * 86400)]
Retries = Annotated[int, msgspec.Meta(ge=0, le=10)]
Delay = Annotated[float, msgspec.Meta(ge=0, le=86400)]
Priority = Annotated[int, msgspec.Meta(ge=1, le=10)]
CalendarInput = dict[str, Any] | Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=NO_NUL)]


class MisfirePolicyBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What happens to occurrences that fell due while no ticker was running (an outage, a stall, a clock jump):
    `fire_all` fires those at most `grace_seconds` old (null: the operator's SCHEDULER_MISFIRE_GRACE_SECONDS),
    `fire_latest` fires only the most recent, `skip` fires none. The others are recorded as `missed` executions."""

    policy: Literal["fire_all", "fire_latest", "skip"] = "fire_all"
    grace_seconds: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None


class ExclusionsBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Occurrences of the schedule the job does not have: those on `dates` (days in the job's time zone) and those
    whose wall-clock time there matches one of `rules` (cron expressions, 5 or 6 fields: `* * 25 12 *` is all of
    25 December, `0 9 * * 1` Mondays at 09:00). Nothing fires or is recorded for them."""

    dates: Annotated[list[date], msgspec.Meta(max_length=MAX_DATES, examples=[["2026-12-25"]])] = msgspec.field(
        default_factory=list
    )
    rules: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]],
        msgspec.Meta(max_length=MAX_RULES, examples=[["* * 25 12 *"]]),
    ] = msgspec.field(default_factory=list)


class AfterBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A link of a chain: the job runs when an occurrence of job `job_id` (of the same account) ends `on` success
    (a 2xx, or a task's return), failure (dead-lettered after its retries) or completion (either)."""

    job_id: UUID
    on: ChainOutcome = "success"


def after_body(schedule: Schedule) -> AfterBody | None:
    return AfterBody(job_id=schedule.job_id, on=schedule.on) if isinstance(schedule, AfterSchedule) else None


def after_of(body: AfterBody) -> AfterSchedule:
    return AfterSchedule(job_id=body.job_id, on=body.on)


class FlowControlBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Limits on the job's webhook deliveries, shared with the account's other jobs naming the same `key`: at most
    `parallelism` in flight, at most `rate` started per `period_seconds` (fixed windows). Deliveries over a limit wait
    their turn; each is held to its own job's limits, so jobs sharing a key should give the same ones."""

    key: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["billing-api"])]
    parallelism: Annotated[int, msgspec.Meta(ge=1, le=1000, examples=[10])] | None = None
    rate: Annotated[int, msgspec.Meta(ge=1, le=1_000_000, examples=[100])] | None = None
    period_seconds: Annotated[float, msgspec.Meta(ge=1, le=86400, examples=[60])] = 1.0


def flow_control_body(flow: FlowControl | None) -> FlowControlBody | None:
    if flow is None:
        return None
    return FlowControlBody(
        key=flow.key, parallelism=flow.parallelism, rate=flow.rate, period_seconds=flow.period_seconds
    )


def flow_control_of(body: FlowControlBody | None) -> FlowControl | None:
    if body is None:
        return None
    return FlowControl(key=body.key, parallelism=body.parallelism, rate=body.rate, period_seconds=body.period_seconds)


def exclusions_body(exclusions: Exclusions | None) -> ExclusionsBody | None:
    if exclusions is None:
        return None
    return ExclusionsBody(dates=list(exclusions.dates), rules=list(exclusions.rules))


def exclusions_of(body: ExclusionsBody | None) -> Exclusions | None:
    return None if body is None else Exclusions(dates=tuple(body.dates), rules=tuple(body.rules))


def misfire_policy_body(policy: MisfirePolicy) -> MisfirePolicyBody:
    return MisfirePolicyBody(policy=policy.policy, grace_seconds=policy.grace_seconds)


def misfire_policy_of(body: MisfirePolicyBody) -> MisfirePolicy:
    return MisfirePolicy(policy=body.policy, grace_seconds=body.grace_seconds)
