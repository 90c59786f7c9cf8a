"""GET /asyncapi.json against `scheduler dev`: a well-formed AsyncAPI 3 document, and events really match it.

No AsyncAPI 3 validator on PyPI is well kept, so the document's structure is checked here (references resolve,
address parameters are declared, operations point into their channel's messages) and every payload schema is
checked against the JSON Schema meta-schemas. The real check subscribes to the advertised subjects for one job and
validates every event it receives against the schema the document gives for its `event_type`.
"""

from __future__ import annotations

import asyncio
import json
import re
import typing
import uuid
from typing import Any

import aiohttp
import jsonschema
import nats
import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from shared.contracts.executions import ExecutionEvent
from shared.contracts.jobs import JobEvent
from shared.contracts.subjects import Names
from tests.e2e.conftest import DevServer
from tests.e2e.harness import Api
from tests.e2e.test_api_webhooks_and_executions import add_webhook
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

ID = re.compile(r"^[A-Za-z0-9_\-]+$")
COMPONENT_KEY = re.compile(r"^[A-Za-z0-9.\-_]+$")
PARAMETER = re.compile(r"\{([^}]+)\}")
# What the job of the real check makes happen: fire (to 2xx, 500 and 410 receivers), then change and delete it.
TRIGGERED = {"JobCreated", "WebhookAdded", "WebhookDisabled", "WebhookUpdated", "WebhookRemoved", "JobUpdated"}
TRIGGERED |= {"JobPaused", "JobResumed", "JobDeleted", "ExecutionRequested", "ExecutionStarted", "ExecutionSucceeded"}
TRIGGERED |= {"ExecutionFailed", "ExecutionRetryScheduled", "ExecutionDeadLettered", "WebhookDisabledByReceiver"}
ALL_EVENT_TYPES = {
    event.__struct_config__.tag for event in (*typing.get_args(JobEvent), *typing.get_args(ExecutionEvent))
}


async def fetch_document(dev: DevServer) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(dev.base_url + "/asyncapi.json") as response:
        assert response.status == 200, await response.text()
        return await response.json()  # type: ignore[no-any-return]


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def payload_validator(document: dict[str, Any], event_type: str) -> Draft202012Validator:
    """The validator of the payload the document gives for one message, its references resolved in the document."""
    payload = document["components"]["messages"][event_type]["payload"]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **payload,
        "components": document["components"],
    }
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def check_structure(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert isinstance(document["info"]["title"], str) and isinstance(document["info"]["version"], str)
    for server in document["servers"].values():
        assert server["protocol"] == "nats" and "@" not in server["host"]
        assert set(PARAMETER.findall(server["host"])) <= set(server.get("variables", {}))
    components = document["components"]
    for name, schema in components["schemas"].items():
        assert COMPONENT_KEY.match(name), name
        # The AsyncAPI Schema Object is a superset of Draft 07; the payloads are also checked as 2020-12 schemas.
        Draft7Validator.check_schema(schema)
        Draft202012Validator.check_schema(schema)
        # OpenAPI's discriminator object is not AsyncAPI's: there it is the name of the tag property.
        assert all(isinstance(node.get("discriminator", ""), str) for node in walk(schema)), name
    for name, message in components["messages"].items():
        assert COMPONENT_KEY.match(name), name
        resolve(document, message["payload"]["$ref"])
    for channel_id, channel in document["channels"].items():
        assert ID.match(channel_id), channel_id
        assert set(PARAMETER.findall(channel["address"])) == set(channel["parameters"]), channel_id
        for message in channel["messages"].values():
            resolve(document, message["$ref"])
    receivers = set()
    for operation_id, operation in document["operations"].items():
        assert ID.match(operation_id) and operation["action"] in ("send", "receive"), operation_id
        channel_ref = operation["channel"]["$ref"]
        channel = resolve(document, channel_ref)
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), (operation_id, message)
            resolve(document, message["$ref"])
        if operation["action"] == "receive":
            receivers.add(channel_ref)
            assert len(operation["messages"]) == len(channel["messages"])
    assert receivers == {f"#/channels/{channel_id}" for channel_id in document["channels"]}


def walk(node: Any) -> typing.Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


async def test_the_document_is_well_formed_and_names_every_event_type(dev_server: DevServer) -> None:
    document = await fetch_document(dev_server)
    check_structure(document)
    messages = document["components"]["messages"]
    assert set(messages) == ALL_EVENT_TYPES
    on_channels = {name for channel in document["channels"].values() for name in channel["messages"]}
    assert on_channels == ALL_EVENT_TYPES
    for event_type in ALL_EVENT_TYPES:
        schema = resolve(document, messages[event_type]["payload"]["$ref"])
        assert schema["properties"]["event_type"] == {"enum": [event_type]}
        assert "event_type" in schema["required"]
    for channel in document["channels"].values():
        assert channel["parameters"]["namespace"]["enum"] == [dev_server.namespace]
        assert channel["address"].endswith(".{account_id}.{job_id}")


async def test_openapi_lists_the_document_without_a_token(dev_server: DevServer) -> None:
    async with aiohttp.ClientSession() as session, session.get(dev_server.base_url + "/openapi.json") as response:
        openapi = await response.json()
    operation = openapi["paths"]["/asyncapi.json"]["get"]
    assert operation.get("security") in (None, [])
    assert "200" in operation["responses"]


def subject_for(channel: dict[str, Any], namespace: str, account_id: uuid.UUID, job_id: uuid.UUID) -> str:
    values = {
        "namespace": namespace,
        "partition": "*",
        "kind": "*",
        "account_id": str(account_id),
        "job_id": str(job_id),
    }
    return PARAMETER.sub(lambda m: values[m.group(1)], channel["address"])


def address_pattern(channel: dict[str, Any]) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", channel["address"])
    return re.compile("".join(r"[^.]+" if PARAMETER.fullmatch(p) else re.escape(p) for p in parts) + "$")


def channel_of(document: dict[str, Any], subject: str) -> dict[str, Any]:
    """The channel a subject belongs to: the one whose address matches it, a literal kind winning over `{kind}`."""
    matching = [c for c in document["channels"].values() if address_pattern(c).match(subject)]
    literal = [c for c in matching if "kind" not in c["parameters"]]
    chosen = literal or matching
    assert len(chosen) == 1, (subject, [c["address"] for c in chosen])
    return chosen[0]


async def test_every_event_of_a_job_matches_the_schema_the_document_gives(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    document = await fetch_document(dev_server)
    namespace = next(iter(document["channels"].values()))["parameters"]["namespace"]["default"]
    assert namespace == dev_server.namespace
    receiver.statuses |= {"/fails": 500, "/gone": 410}
    status, job = await api.call(
        "POST",
        "/api/jobs",
        json={"account_id": str(account_id), "name": "asyncapi", "schedule": "* * * * * *", "type": 1},
    )
    assert status == 201, job
    job_id = uuid.UUID(job["id"])
    ok = await add_webhook(api, job["id"], receiver.url_for("/ok"))
    fails = await add_webhook(api, job["id"], receiver.url_for("/fails"))
    await add_webhook(api, job["id"], receiver.url_for("/gone"))
    # A delivery still running after the threshold (1 s) has an ExecutionStarted; quicker ones do not.
    slow = receiver.gates.setdefault("/slow", asyncio.Event())
    await add_webhook(api, job["id"], receiver.url_for("/slow"))

    advertised = [address_pattern(channel) for channel in document["channels"].values()]
    received: list[tuple[str, str, dict[str, Any]]] = []
    all_subjects: set[str] = set()
    nc = await nats.connect(dev_server.nats_url)
    try:
        js = nc.jetstream()
        for channel_id, channel in document["channels"].items():

            async def collect(msg: Any, channel_id: str = channel_id) -> None:
                received.append((channel_id, msg.subject, json.loads(msg.data)))

            await js.subscribe(subject_for(channel, namespace, account_id, job_id), cb=collect, ordered_consumer=True)

        # Independently of the document, every subject of the job, so an event on an unadvertised subject shows.
        names = Names(namespace)
        for everything in (names.job_lookup_subject(job_id), names.execution_subject("*", account_id, job_id)):

            async def note(msg: Any) -> None:
                all_subjects.add(msg.subject)

            await js.subscribe(everything, cb=note, ordered_consumer=True)

        def seen() -> set[str]:
            return {payload["event_type"] for _, _, payload in received}

        def unadvertised() -> set[str]:
            return {subject for subject in all_subjects if not any(p.match(subject) for p in advertised)}

        firing = {"ExecutionRequested", "ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed"}
        firing |= {"ExecutionRetryScheduled", "ExecutionDeadLettered", "WebhookDisabledByReceiver", "WebhookDisabled"}
        assert firing <= TRIGGERED <= ALL_EVENT_TYPES
        await eventually(lambda: firing <= seen() or unadvertised(), timeout=30, what=f"events {sorted(firing)}")
        slow.set()
        assert not unadvertised(), f"events on subjects the document does not advertise: {unadvertised()}"
        for method, path, body in [
            ("PUT", f"/webhooks/{ok['id']}", {"headers": {"X-Changed": "yes"}}),
            ("DELETE", f"/webhooks/{fails['id']}", None),
            ("PUT", f"/api/jobs/{job_id}", {"name": "asyncapi renamed"}),
            ("PATCH", f"/api/jobs/{job_id}/disable", None),
            ("PATCH", f"/api/jobs/{job_id}/enable", None),
            ("DELETE", f"/api/jobs/{job_id}", None),
        ]:
            status, answer = await api.call(method, path, json=body)
            assert status in (200, 204), (method, path, answer)
        await eventually(lambda: seen() >= TRIGGERED, timeout=15, what=f"events {sorted(TRIGGERED)}")
        await asyncio.sleep(0.2)  # let in-flight callbacks finish before the subscriptions close
    finally:
        await nc.close()

    assert not unadvertised(), f"events on subjects the document does not advertise: {unadvertised()}"
    for channel_id, subject, payload in received:
        channel = channel_of(document, subject)
        event_type = payload["event_type"]
        assert event_type in channel["messages"], (channel_id, subject, event_type)
        assert subject.endswith(f".{account_id}.{job_id}") and subject.startswith(namespace + ".")
        assert payload["account_id"] == str(account_id) and payload["job_id"] == str(job_id)
        payload_validator(document, event_type).validate(payload)
    # Schema version 2: only the delivery still running after the threshold has an ExecutionStarted.
    target_of = {
        payload["execution_id"]: (payload["webhook"] or {}).get("url")
        for _, _, payload in received
        if payload["event_type"] == "ExecutionRequested"
    }
    started_targets = {
        target_of.get(payload["execution_id"])
        for _, _, payload in received
        if payload["event_type"] == "ExecutionStarted"
    }
    assert started_targets == {receiver.url_for("/slow")}, started_targets
    assert {payload["schema_version"] for _, _, payload in received if "execution_id" in payload} == {2}
    # The schemas are not vacuous: a payload of one type does not pass as another.
    started = next(payload for _, _, payload in received if payload["event_type"] == "ExecutionStarted")
    with pytest.raises(jsonschema.ValidationError):
        payload_validator(document, "ExecutionSucceeded").validate(started)
