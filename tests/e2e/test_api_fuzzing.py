"""Fuzzing both API surfaces with schemathesis, from the OpenAPI document the api serves.

Every operation is called with generated inputs, valid and invalid: no answer is a 5xx, and every answer conforms
to the document (status code, content type, body schema). Calls carry a service-role token; each protected
operation must also refuse the same call without one. A stateful run chains operations through the links
schemathesis infers (create a job, then read, update, pause and delete it). The api and projector run in a thread
of their own on real NATS and Postgres, with no ticker or dispatcher, so fuzzed jobs never fire.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from scheduler.runner import run_services
from services.api.core.auth import mint_token
from shared.settings import Settings
from tests.conftest import JWT_SECRET

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


class ApiInThread:
    """The api and projector on an event loop in a thread, for synchronous clients."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = f"http://127.0.0.1:{settings.api_port}"
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.failure: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            await run_services(self._settings, ["api", "projector"], self._stop)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc

    def __enter__(self) -> ApiInThread:
        self._thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or too slow to answer on a loaded box
                pass
            time.sleep(0.1)
        raise AssertionError(f"the api did not start: {self.failure!r}")

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert self.failure is None, self.failure


@pytest.fixture
def served(settings: Settings) -> Iterator[ApiInThread]:
    with ApiInThread(settings) as api:
        yield api


@pytest.fixture
def api_schema(served: ApiInThread) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(served.base_url + "/openapi.json")


ADMIN = {"Authorization": f"Bearer {mint_token(JWT_SECRET, accounts=[], service_role=True)}"}


def test_no_operation_answers_5xx_or_outside_the_document(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25, [f"{o.method} {o.path}" for o in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def fuzz(case: schemathesis.Case) -> None:
            # With no ticker running, /health/detailed answers its documented 503: that one 5xx is the truth.
            health = case.path == "/health/detailed"
            case.call_and_validate(headers=ADMIN, checks=CHECKS[1:] if health else CHECKS)
            if case.operation.definition.raw.get("security") not in (None, []):
                response = case.call(headers={"Authorization": ""})
                assert response.status_code == 401, (case.method, case.path, response.status_code, response.text[:300])

        fuzz()


def test_stateful_sequences_keep_every_answer_in_the_document(api_schema: schemathesis.BaseSchema) -> None:
    machine = api_schema.as_state_machine()
    calls: list[str] = []

    class Run(machine):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            calls.append(f"{case.method} {case.path}")
            return {"headers": ADMIN}

        def validate_response(self, response: object, case: schemathesis.Case, **kwargs: object) -> None:
            case.validate_response(response, checks=CHECKS)  # type: ignore[arg-type]

    Run.run(settings=settings(max_examples=15, stateful_step_count=6, deadline=None, derandomize=True,
                              suppress_health_check=list(HealthCheck)))  # fmt: skip
    # The inferred links chain creation to the operations on what was created.
    assert any(c.startswith("POST /api/jobs") for c in calls), calls
    assert any("{job_id}" in c for c in calls), sorted(set(calls))
