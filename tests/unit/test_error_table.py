"""The one error table (services/api/core/errors.py) and each surface's rendering of it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import msgspec
import nats.errors
import pytest
from litestar import Request

from services.api.core.api_errors import (
    ConflictError,
    DependencyUnavailableError,
    ForbiddenError,
    JobNotFoundError,
    ValidationFailedError,
)
from services.api.core.errors import (
    DATABASE_DOWN,
    EVENT_STORE_DOWN,
    EVENT_STORE_SLOW,
    INTERNAL,
    SOMETHING_DOWN,
    ErrorAnswer,
    answer_for,
    origin_of,
)
from services.api.http.error_responses import PrimaryErrors, exception_handlers
from services.api.nexus.errors import NexusErrors
from services.api.ui.errors import ui_exception_handlers

pytestmark = pytest.mark.unit

NO_REQUEST = cast(Request[Any, Any, Any], None)  # the API renderers do not read the request


def raised_in(module: str, exc: Exception) -> Exception:
    """`exc` as raised by code of `module` (its traceback's innermost frame is there)."""
    namespace: dict[str, Any] = {"__name__": module}
    exec("def fail(exc):\n    raise exc\n", namespace)  # noqa: S102 - a frame whose module is `module`
    try:
        namespace["fail"](exc)
    except Exception as raised:  # noqa: BLE001 - it is the one raised just above
        return raised
    raise AssertionError("not raised")


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (ValidationFailedError("bad", field="name"), 400, "VALIDATION_ERROR"),
        (ForbiddenError("no"), 403, "FORBIDDEN"),
        (JobNotFoundError("job 1 not found"), 404, "JOB_NOT_FOUND"),
        (ConflictError("busy"), 409, "CONFLICT"),
        (DependencyUnavailableError("the api is still starting"), 503, "SERVICE_UNAVAILABLE"),
    ],
)
def test_a_domain_error_keeps_its_own_message_with_its_status_and_code(exc: Exception, status: int, code: str) -> None:
    assert answer_for(exc) == ErrorAnswer(status, code, str(exc), "domain")


def test_infrastructure_errors_name_what_is_down() -> None:
    assert answer_for(asyncpg.exceptions.InvalidCatalogNameError("gone")) == DATABASE_DOWN
    assert answer_for(asyncpg.exceptions.ConnectionDoesNotExistError("closed")) == DATABASE_DOWN
    assert answer_for(nats.errors.TimeoutError()) == EVENT_STORE_SLOW
    assert answer_for(nats.errors.ConnectionClosedError()) == EVENT_STORE_DOWN
    assert answer_for(ValueError("a bug")) == INTERNAL


def test_a_bare_os_error_is_told_apart_by_the_client_that_met_it() -> None:
    assert answer_for(raised_in("nats.aio.client", ConnectionResetError())) == EVENT_STORE_DOWN
    assert answer_for(raised_in("shared.bus.job_store", BrokenPipeError())) == EVENT_STORE_DOWN
    assert answer_for(raised_in("asyncpg.connection", TimeoutError())) == DATABASE_DOWN
    assert answer_for(raised_in("natsort", OSError())) == SOMETHING_DOWN  # a prefix is a whole module name
    assert answer_for(OSError("never raised")) == SOMETHING_DOWN


def test_a_refused_postgres_connection_is_a_database_error() -> None:
    async def connect() -> Exception:
        try:
            await asyncpg.connect("postgresql://postgres@127.0.0.1:1/postgres", timeout=5)
        except OSError as exc:
            return exc
        raise AssertionError("connected to port 1")

    refused = asyncio.run(connect())
    assert origin_of(refused) == "database"
    assert answer_for(refused) == DATABASE_DOWN


def body(response: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(response.content))


def test_each_api_surface_renders_a_nats_timeout_as_503_in_its_shape() -> None:
    exc = nats.errors.TimeoutError()
    primary = PrimaryErrors().answer(NO_REQUEST, exc, answer_for(exc))
    assert (primary.status_code, body(primary)) == (
        503,
        {"detail": EVENT_STORE_SLOW.detail, "error_code": "SERVICE_UNAVAILABLE", "status_code": 503},
    )
    nexus = NexusErrors().answer(NO_REQUEST, exc, answer_for(exc))
    assert (nexus.status_code, body(nexus)) == (503, {"detail": "The" + EVENT_STORE_SLOW.detail.removeprefix("the")})


def test_nexus_keeps_its_own_conventions() -> None:
    # The core names the field neutrally (a schedule, of its kind); NEXUS names it as its document does.
    missing = ValidationFailedError("cron_expression is required", "schedule", missing=True, schedule_kind="cron")
    rendered = NexusErrors().answer(NO_REQUEST, missing, answer_for(missing))
    assert (rendered.status_code, body(rendered)) == (
        422,
        {"detail": [{"loc": ["body", "cron_expression"], "msg": "field required", "type": "value_error.missing"}]},
    )
    own = ValidationFailedError("not a valid UUID", field="X-Account-Id", location="header")
    assert body(NexusErrors().answer(NO_REQUEST, own, answer_for(own))) == {
        "detail": [{"loc": ["header", "X-Account-Id"], "msg": "not a valid UUID", "type": "value_error"}]
    }
    absent = JobNotFoundError("job 7 not found")
    rendered = NexusErrors().answer(NO_REQUEST, absent, answer_for(absent))
    assert (rendered.status_code, body(rendered)) == (404, {"detail": "Job not found"})
    bug = KeyError("x")
    rendered = NexusErrors().answer(NO_REQUEST, bug, answer_for(bug))
    assert (rendered.status_code, body(rendered)) == (500, {"detail": "Internal server error"})


def test_every_surface_answers_the_same_exceptions_so_none_falls_through_to_another() -> None:
    primary, nexus = exception_handlers(PrimaryErrors()), exception_handlers(NexusErrors())
    assert primary.keys() == nexus.keys()
    assert primary.keys() <= ui_exception_handlers().keys()
