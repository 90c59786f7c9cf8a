"""The callbacks an attempt's outcome leads to: its result to the job's `callback_url`, its dead letter to the job's
`failure_callback_url` (the URLs are the job's when the occurrence fired, carried by the request)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.contracts.callbacks import CallbackBody, CallbackKind, CallbackRequested
from shared.contracts.executions import ExecutionFailed, ExecutionRequested, ExecutionSucceeded, envelope_of


def _callback(
    request: ExecutionRequested, kind: CallbackKind, url: str, at: datetime, **fields: Any
) -> CallbackRequested:
    body = CallbackBody(
        kind=kind,
        id=request.execution_id,
        job_id=request.job_id,
        job_name=request.job_name,
        account_id=request.account_id,
        webhook_id=request.webhook.id if request.webhook is not None else None,
        occurrence_id=request.occurrence_id,
        scheduled_at=request.nominal_time,
        attempt=request.attempt,
        **fields,
    )
    return CallbackRequested(**envelope_of(request), occurred_at=at, kind=kind, url=url, body=body)


def result_callback(
    request: ExecutionRequested, ended: ExecutionSucceeded | ExecutionFailed, retry_at: datetime | None
) -> CallbackRequested | None:
    """The callback of an attempt's outcome, if the job asks for one. `retry_at`: when the next attempt is due."""
    if request.callback_url is None:
        return None
    if isinstance(ended, ExecutionSucceeded):
        status, error, result = "success", None, ended.result
    else:
        status, error, result = ("timed_out" if ended.timed_out else "failure"), ended.error, None
    return _callback(
        request,
        "result",
        request.callback_url,
        ended.finished_at,
        status=status,
        final=retry_at is None,
        started_at=ended.started_at,
        finished_at=ended.finished_at,
        duration_ms=ended.duration_ms,
        response_code=ended.response_code,
        response_body=ended.response_body,
        error=error,
        result=result,
        retry_at=retry_at,
    )


def failure_callback(request: ExecutionRequested, dead_lettered_at: datetime, reason: str) -> CallbackRequested | None:
    """The callback of an occurrence's dead letter, if the job asks for one."""
    if request.failure_callback_url is None:
        return None
    return _callback(
        request,
        "failure",
        request.failure_callback_url,
        dead_lettered_at,
        status="dead_letter",
        final=True,
        error=reason,
        dead_lettered_at=dead_lettered_at,
    )
