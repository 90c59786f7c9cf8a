"""Decisions about a job's webhooks: add, change, remove, and disable after a receiver's 410 Gone."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from shared.contracts.jobs import (
    JobEvent,
    JobState,
    WebhookAdded,
    WebhookDisabled,
    WebhookRemoved,
    WebhookSpec,
    WebhookUpdated,
)
from shared.delivery.templates import sent_content_type
from shared.domain.errors import ValidationFailed, WebhookNotFound
from shared.domain.job_checks import (
    MAX_WEBHOOKS_PER_JOB,
    check_body,
    check_size,
    checked_headers,
    checked_url,
)
from shared.domain.job_commands import AddWebhook, ChangeWebhook, DisableWebhook, RemoveWebhook, WebhookDraft
from shared.domain.job_events import following
from shared.domain.job_patches import WebhookChanges


def checked_webhook(draft: WebhookDraft) -> WebhookDraft:
    """The webhook as it would be kept: its URL, headers and body template checked."""
    url = checked_url(draft.url)
    headers = checked_headers(draft.headers)
    check_body(draft.body_template, sent_content_type(draft.content_type, headers))
    return dataclasses.replace(draft, url=url, headers=headers)


def checked_webhook_changes(changes: WebhookChanges) -> dict[str, Any]:
    """The webhook fields a change sets, checked where they can be alone (None headers: none)."""
    values = changes.given()
    if values.get("enabled") is True:
        values["disabled_reason"] = None
    if "url" in values:
        values["url"] = checked_url(values["url"])
    if "headers" in values:
        values["headers"] = checked_headers(values["headers"] or {})
    return values


def webhook_spec(hook: WebhookDraft, webhook_id: UUID, now: datetime) -> WebhookSpec:
    """A drafted webhook as the job keeps it."""
    return WebhookSpec(
        id=webhook_id,
        url=hook.url,
        method=hook.method,
        headers=hook.headers,
        query_params=hook.query_params,
        body_template=hook.body_template,
        content_type=hook.content_type,
        created_at=now,
        updated_at=now,
    )


def _webhook(state: JobState, webhook_id: UUID) -> WebhookSpec:
    found = next((w for w in state.webhooks if w.id == webhook_id), None)
    if found is None:
        raise WebhookNotFound(f"webhook {webhook_id} not found")
    return found


def _with_webhooks(state: JobState, webhooks: tuple[WebhookSpec, ...], now: datetime) -> JobState:
    return msgspec.structs.replace(state, webhooks=webhooks, updated_at=now)


def add_webhook(latest: JobEvent, command: AddWebhook, now: datetime) -> WebhookAdded:
    """Attach the webhook, up to MAX_WEBHOOKS_PER_JOB."""
    hook = checked_webhook(command.draft)
    current = latest.job
    if len(current.webhooks) >= MAX_WEBHOOKS_PER_JOB:
        raise ValidationFailed(f"a job has at most {MAX_WEBHOOKS_PER_JOB} webhooks")
    webhook = webhook_spec(hook, command.webhook_id, now)
    state = _with_webhooks(current, (*current.webhooks, webhook), now)
    event = following(WebhookAdded, latest, state, now, webhook_id=command.webhook_id)
    check_size(event)
    return event


def change_webhook(latest: JobEvent, command: ChangeWebhook, now: datetime) -> WebhookUpdated | None:
    """Change the fields given; None when none of them changes."""
    values = checked_webhook_changes(command.changes)
    current = latest.job
    before = _webhook(current, command.webhook_id)
    after = msgspec.structs.replace(before, **values)
    changed = tuple(f for f in values if getattr(before, f) != getattr(after, f))
    if not changed:
        return None
    if {"body_template", "content_type", "headers"} & set(changed):
        check_body(after.body_template, sent_content_type(after.content_type, after.headers))
    after = msgspec.structs.replace(after, updated_at=now)
    webhooks = tuple(after if w.id == command.webhook_id else w for w in current.webhooks)
    state = _with_webhooks(current, webhooks, now)
    event = following(WebhookUpdated, latest, state, now, webhook_id=command.webhook_id, changed=changed)
    check_size(event)
    return event


def remove_webhook(latest: JobEvent, command: RemoveWebhook, now: datetime) -> WebhookRemoved:
    """Detach the webhook."""
    current = latest.job
    _webhook(current, command.webhook_id)
    state = _with_webhooks(current, tuple(w for w in current.webhooks if w.id != command.webhook_id), now)
    event = following(WebhookRemoved, latest, state, now, webhook_id=command.webhook_id)
    check_size(event)
    return event


def disable_webhook(latest: JobEvent, command: DisableWebhook, now: datetime) -> WebhookDisabled | None:
    """Switch the webhook off with the receiver's reason; None when it is already off or was removed. The job's
    next run stays as it was (its other webhooks and task still fire)."""
    current = latest.job
    webhook = next((w for w in current.webhooks if w.id == command.webhook_id), None)
    if webhook is None or not webhook.enabled:
        return None
    off = msgspec.structs.replace(webhook, enabled=False, disabled_reason=command.reason, updated_at=now)
    state = _with_webhooks(current, tuple(off if w.id == command.webhook_id else w for w in current.webhooks), now)
    return WebhookDisabled(
        # Deterministic, so a redelivered request that repeats the disable is dropped as a duplicate publish.
        event_id=uuid.uuid5(command.execution_id, "webhook-disabled"),
        job_id=current.id,
        account_id=current.account_id,
        version=latest.version + 1,
        occurred_at=now,
        job=state,
        next_run_at=latest.next_run_at,
        webhook_id=command.webhook_id,
        reason=command.reason,
    )
