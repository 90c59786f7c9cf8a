"""Between the primary API's bodies and what the core reads and commands take."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from services.api.core.execution_queries import ExecutionRecord
from services.api.core.fields import after_body, exclusions_body, flow_control_body, misfire_policy_body
from services.api.core.job_commands import WebhookDraft
from services.api.core.job_queries import JobRecord
from services.api.core.webhook_queries import WebhookRecord
from services.api.rest.schemas import ExecutionOut, JobOut, NewWebhook, RetryPolicyBody, WebhookCreate, WebhookOut
from shared.contracts.jobs import JobEvent, RetryPolicy, WebhookSpec
from shared.contracts.schedules import CronSchedule, Schedule


def schedule_text(schedule: Schedule) -> str:
    """The `schedule` string of the Scheduler service API (a cron expression)."""
    return schedule.expression if isinstance(schedule, CronSchedule) else msgspec.json.encode(schedule).decode()


def retry_policy_body(policy: RetryPolicy) -> RetryPolicyBody:
    return RetryPolicyBody(
        max_attempts=policy.max_attempts,
        backoff_seconds=policy.base_delay_seconds,
        backoff_type=policy.backoff,
        jitter=policy.jitter,
        max_backoff_seconds=policy.max_delay_seconds,
    )


def retry_policy_of(body: RetryPolicyBody) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=body.max_attempts,
        base_delay_seconds=body.backoff_seconds,
        backoff=body.backoff_type,
        jitter=body.jitter,
        max_delay_seconds=body.max_backoff_seconds,
    )


def job_out(job: JobRecord) -> JobOut:
    """A job of the read model as this API shows it."""
    return JobOut(
        id=job.id,
        account_id=job.account_id,
        name=job.name,
        schedule=schedule_text(job.schedule),
        type=job.type,
        timezone=job.timezone,
        enabled=job.enabled,
        last_run_at=job.last_run_at,
        next_run_at=job.next_run_at,
        created_at=job.created_at,
        updated_at=job.updated_at,
        retry_policy=retry_policy_body(job.retry),
        timeout_seconds=job.timeout_seconds,
        misfire_policy=misfire_policy_body(job.misfire),
        overlap_policy=job.overlap,
        jitter_seconds=job.jitter_seconds,
        start_at=job.start_at,
        end_at=job.end_at,
        exclusions=exclusions_body(job.exclusions),
        callback_url=job.callback_url,
        failure_callback_url=job.failure_callback_url,
        flow_control=flow_control_body(job.flow_control),
        after=after_body(job.schedule),
    )


def job_from_event(event: JobEvent, last_run_at: datetime | None = None) -> JobOut:
    """A job as a command left it (the read model may not have it yet)."""
    job = event.job
    return JobOut(
        id=job.id,
        account_id=job.account_id,
        name=job.name,
        schedule=schedule_text(job.schedule),
        type=job.type,
        timezone=job.timezone,
        enabled=job.enabled,
        last_run_at=last_run_at,
        next_run_at=event.next_run_at,
        created_at=job.created_at,
        updated_at=job.updated_at,
        retry_policy=retry_policy_body(job.retry),
        timeout_seconds=job.timeout_seconds,
        misfire_policy=misfire_policy_body(job.misfire),
        overlap_policy=job.overlap,
        jitter_seconds=job.jitter_seconds,
        start_at=job.start_at,
        end_at=job.end_at,
        exclusions=exclusions_body(job.exclusions),
        callback_url=job.callback_url,
        failure_callback_url=job.failure_callback_url,
        flow_control=flow_control_body(job.flow_control),
        after=after_body(job.schedule),
    )


def webhook_draft(body: NewWebhook | WebhookCreate) -> WebhookDraft:
    """A webhook body of either route (with a new job, or POST /webhooks) as the commands take it."""
    return WebhookDraft(
        url=body.url,
        method=body.method,
        headers=body.headers or {},
        query_params=body.query_params,
        body_template=body.body_template,
        content_type=body.content_type,
    )


def webhook_out(job_id: UUID, spec: WebhookSpec | WebhookRecord) -> WebhookOut:
    return WebhookOut(
        id=spec.id,
        job_id=job_id,
        url=spec.url,
        method=spec.method,
        headers=spec.headers,
        query_params=spec.query_params,
        body_template=spec.body_template,
        content_type=spec.content_type,
        created_at=spec.created_at,
        updated_at=spec.updated_at,
        enabled=spec.enabled,
        disabled_reason=spec.disabled_reason,
    )


def execution_out(execution: ExecutionRecord) -> ExecutionOut:
    return ExecutionOut(
        id=execution.id,
        job_id=execution.job_id,
        webhook_id=execution.webhook_id,
        occurrence_id=execution.occurrence_id,
        scheduled_at=execution.nominal_time,
        status=execution.status,
        attempt=execution.attempt,
        started_at=execution.started_at,
        finished_at=execution.finished_at,
        response_code=execution.response_code,
        response_body=execution.response_body,
        error=execution.error,
        worker_id=execution.worker_id,
        duration_ms=execution.duration_ms,
        created_at=execution.created_at,
        retry_at=execution.retry_at,
        dead_lettered_at=execution.dead_lettered_at,
        backfill_id=execution.backfill_id,
    )
