"""The AsyncAPI 3.0 document of the event streams, generated from the contracts so it cannot drift from them.

Every member of the JobEvent and ExecutionEvent unions becomes a message whose payload is the JSON Schema msgspec
derives from the Struct; channel addresses come from `Names`, the same functions the publishers build subjects with.
"""

from __future__ import annotations

import copy
import functools
import typing
from typing import Any
from uuid import UUID

import msgspec

from shared.contracts.execution_envelope import EXECUTION_SCHEMA_VERSION
from shared.contracts.executions import SUBJECT_KINDS, ExecutionEvent
from shared.contracts.jobs import JobEvent
from shared.contracts.subjects import PARTITIONS, Names, partition_of
from shared.settings import Settings

ASYNCAPI_VERSION = "3.0.0"
# 0.2.0: execution events' schema_version 2, where a webhook attempt has an ExecutionStarted only when it was still
# running after SCHEDULER_STARTED_EVENT_AFTER_SECONDS (its result carries started_at either way).
# 0.3.0: a job's state has `exclusions` (null when it has none; absent from events written before it).
# 0.4.0: result callbacks and flow control: a job's state and ExecutionRequested have `callback_url`,
# `failure_callback_url` and `flow_control`; the callback events CallbackRequested, CallbackDelivered and
# CallbackFailed (kinds callback, callback_delivered, callback_failed), and ExecutionWaiting (kind waiting); job
# chains: a schedule of kind `after`, and ExecutionRequested's `upstream`.
# 0.5.0: backfills: BackfillRequested, BackfillProgressed, BackfillCompleted and BackfillCancelled (kind backfill),
# and ExecutionRequested's `backfill_id`.
DOCUMENT_VERSION = "0.5.0"
SCHEMA_REF = "#/components/schemas/{name}"

# The subject kinds come from SUBJECT_KINDS, the table publish_result enforces. An event type missing there still
# appears, on a channel whose `kind` is a parameter.

# Stand-ins that are swapped for parameters once Names has laid out a subject.
_ACCOUNT, _JOB = UUID(int=0xACC), UUID(int=0x70B)
_UNKNOWN_KIND = "{kind}"

_HEADERS = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "Deduplication id: the event id of a job event; the execution id (plus a suffix for"
            " results and callbacks) of an execution event. Consumers may use it to drop redeliveries.",
        }
    },
}


def _parameters(namespace: str, *, job_partition: bool, kind: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "namespace": {
            "enum": [namespace],
            "default": namespace,
            "description": "The installation's namespace (SCHEDULER_NAMESPACE), first token of every subject.",
        }
    }
    if job_partition:
        params["partition"] = {
            "description": f"crc32 of the job id's 16 bytes, modulo {PARTITIONS}. Subscribers usually give `*`.",
            "examples": [str(partition_of(_JOB))],
        }
    if kind:
        params["kind"] = {"description": "The transition, one subject token per execution event type."}
    params["account_id"] = {"description": "UUID of the account that owns the job.", "examples": [str(_ACCOUNT)]}
    params["job_id"] = {"description": "UUID of the job.", "examples": [str(_JOB)]}
    return params


def _address(subject: str, namespace: str) -> str:
    """A concrete subject built by Names, with its namespace, partition, account and job tokens as parameters."""
    assert subject.startswith(namespace + ".")
    tokens = {str(_ACCOUNT): "{account_id}", str(_JOB): "{job_id}", str(partition_of(_JOB)): "{partition}"}
    rest = subject[len(namespace) + 1 :].split(".")
    return ".".join(["{namespace}", *(tokens.get(token, token) for token in rest)])


def _asyncapi_schema(node: Any) -> Any:
    """msgspec writes OpenAPI's discriminator object; an AsyncAPI Schema Object's discriminator is the property name."""
    if isinstance(node, dict):
        out = {key: _asyncapi_schema(value) for key, value in node.items()}
        if isinstance(out.get("discriminator"), dict):
            out["discriminator"] = out["discriminator"]["propertyName"]
        return out
    if isinstance(node, list):
        return [_asyncapi_schema(item) for item in node]
    return node


def _tag(event: type[msgspec.Struct]) -> str:
    tag = event.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def _summary(event: type) -> str:
    return (event.__doc__ or _tag(event)).strip().splitlines()[0]


def _channel(address: str, description: str, parameters: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    return {
        "address": address,
        "description": description,
        "parameters": parameters,
        "messages": {tag: {"$ref": f"#/components/messages/{tag}"} for tag in tags},
    }


@functools.lru_cache(maxsize=8)
def _document(namespace: str) -> dict[str, Any]:
    names = Names(namespace)
    job_events: list[type[msgspec.Struct]] = list(typing.get_args(JobEvent))
    execution_events: list[type[msgspec.Struct]] = list(typing.get_args(ExecutionEvent))
    refs, schemas = msgspec.json.schema_components([*job_events, *execution_events], ref_template=SCHEMA_REF)
    messages = {
        _tag(event): {
            "name": _tag(event),
            "title": _tag(event),
            "summary": _summary(event),
            "contentType": "application/json",
            "headers": _HEADERS,
            "payload": ref,
        }
        for event, ref in zip([*job_events, *execution_events], refs, strict=True)
    }
    channels = {
        "jobs": _channel(
            _address(names.job_subject(_ACCOUNT, _JOB), namespace),
            f"Job events, one subject per job (stream {names.jobs_stream}); each carries the job's whole state."
            f" All of an account's jobs: `{namespace}.jobs.*.<account_id>.*`;"
            f" one job: `{namespace}.jobs.*.*.<job_id>`.",
            _parameters(namespace, job_partition=True, kind=False),
            [_tag(event) for event in job_events],
        )
    }
    by_kind: dict[str, list[str]] = {}
    for event in execution_events:
        for kind in SUBJECT_KINDS.get(event, (_UNKNOWN_KIND,)):
            by_kind.setdefault(kind, []).append(_tag(event))
    for kind, tags in by_kind.items():
        known = kind != _UNKNOWN_KIND
        channels["executions_" + (kind if known else "other")] = _channel(
            _address(names.execution_subject(kind, _ACCOUNT, _JOB), namespace),
            f"Execution transitions `{kind}` (stream {names.executions_stream}). Every transition of an account:"
            f" `{namespace}.executions.*.<account_id>.*`; of one job: `{namespace}.executions.*.*.<job_id>`.",
            _parameters(namespace, job_partition=False, kind=not known),
            tags,
        )
    operations = {
        f"receive_{channel_id}": {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Subscribe to {channel_id.replace('_', ' ')} events",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{tag}"} for tag in channel["messages"]],
        }
        for channel_id, channel in channels.items()
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Scheduler events",
            "version": DOCUMENT_VERSION,
            "description": "Every state change of jobs and executions, published on NATS JetStream as JSON."
            " Subjects end in `<account_id>.<job_id>`, so a subscriber filters by account and job with NATS"
            " wildcards. Payloads are tagged by `event_type`; unknown fields may be added, so ignore them."
            f" Execution events are at schema_version {EXECUTION_SCHEMA_VERSION}: an attempt's ExecutionStarted is"
            " published for tasks and for webhook deliveries still running after a threshold"
            " (SCHEDULER_STARTED_EVENT_AFTER_SECONDS, 1 s by default); a quicker delivery's only event after its"
            " ExecutionRequested is its result, which carries started_at and worker_id. Version 1 published"
            " ExecutionStarted for every attempt. A job with a `callback_url` (or `failure_callback_url`) gets"
            " CallbackRequested after each attempt's result (or its occurrence's dead letter); its `body` is what"
            " the callback's receiver is sent, and it ends as CallbackDelivered or, after its tries, a CallbackFailed"
            " with `final` true. A delivery whose flow-control key is at a limit is published as ExecutionWaiting"
            " and delivered once the key has room. A chained job (schedule kind `after`) fires when an occurrence of"
            " the job it runs after ends; its ExecutionRequested carries `upstream`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "{host}",
                "protocol": "nats",
                "description": "The NATS server of the installation (NATS_URL).",
                "variables": {"host": {"default": "localhost:4222", "description": "host:port of NATS_URL"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _asyncapi_schema(schemas), "messages": messages},
    }


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of this installation's streams (subjects under `settings.namespace`)."""
    return copy.deepcopy(_document(settings.namespace))
