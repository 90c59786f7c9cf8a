"""Every service process serves /livez, /readyz and Prometheus /metrics on SCHEDULER_OPS_PORT, and logs JSON lines."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.embedded import free_port
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.e2e.harness import api_client, create_firing_job, service_env, start_process, stop_process
from tests.receiver import Receiver
from tests.unit.test_alert_rules import queried_metrics
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_each_service_reports_health_and_metrics(
    settings: Settings, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str], tmp_path: Path
) -> None:
    env = service_env(settings) | {"SCHEDULER_LOG_FORMAT": "json"}
    ports = {name: free_port() for name in ("projector", "api", "ticker", "dispatcher")}
    processes: dict[str, subprocess.Popen[bytes]] = {
        name: start_process([name], env | {"SCHEDULER_OPS_PORT": str(port)}, tmp_path / f"{name}.log")
        for name, port in ports.items()
    }
    try:
        async with aiohttp.ClientSession() as http, api_client(settings.api_port, auth_headers) as api:

            async def get(name: str, path: str) -> tuple[int, str]:
                try:
                    async with http.get(f"http://127.0.0.1:{ports[name]}{path}") as response:
                        return response.status, await response.text()
                except aiohttp.ClientError:
                    return 0, ""

            for name in ports:
                await eventually(lambda n=name: _status_is(get(n, "/readyz"), 200), timeout=30, what=f"{name} ready")
                assert (await get(name, "/livez"))[0] == 200
            await create_firing_job(api, account_id, receiver.url)
            executions_stream = Names(settings.namespace).executions_stream
            await eventually(lambda: len(receiver.calls) >= 2, timeout=20, what="deliveries")

            async def metric(name: str, sample: str, labels: dict[str, str] | None = None) -> float | None:
                status, text = await get(name, "/metrics")
                assert status == 200
                value = samples(text).get((sample, tuple(sorted((labels or {}).items()))))
                return value if value else None

            assert (
                await eventually(lambda: metric("ticker", "scheduler_ticker_partitions_held"), what="partitions") == 32
            )
            assert await eventually(lambda: metric("ticker", "scheduler_occurrences_published_total"), what="fired")
            assert await eventually(lambda: metric("ticker", "scheduler_fire_lateness_seconds_count"), what="lateness")
            assert await eventually(
                lambda: metric("dispatcher", "scheduler_deliveries_total", {"outcome": "success", "code": "200"}),
                what="deliveries counted",
            )
            assert await eventually(
                lambda: metric(
                    "projector",
                    "scheduler_projected_events_total",
                    {"stream": executions_stream},
                ),
                what="projected events counted",
            )
            assert await metric("projector", "scheduler_projector_streams_held") == 2

            # Every metric the Grafana dashboard and the alert rules (deploy/) query is one a service serves.
            served: set[str] = set()
            for name in ports:
                status, text = await get(name, "/metrics")
                assert status == 200
                served |= metric_names(text)
            missing = queried_metrics() - served
            assert not missing, f"queried but served by no service: {sorted(missing)}"
    finally:
        codes = {name: stop_process(p) for name, p in processes.items()}
    assert all(code == 0 for code in codes.values()), codes
    for name in ("ticker", "dispatcher", "projector", "api"):
        text = (tmp_path / f"{name}.log").read_text()
        lines = [line for line in text.splitlines() if line.startswith("{")]
        assert lines, f"{name} logged no JSON:\n{text[-2000:]}"
        record = json.loads(lines[0])
        assert {"asctime", "level", "name", "message"} <= set(record), record
        others = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
        assert not others, f"{name} logged lines that are not JSON: {others[:5]}"


def metric_names(text: str) -> set[str]:
    """The metric names a scrape holds: its samples', and every declared family's (a labelled metric nothing has
    counted yet has no sample, only its `# TYPE` line; a histogram's queries name its series)."""
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return names


async def _status_is(call: object, expected: int) -> bool:
    status, _ = await call  # type: ignore[misc]
    return bool(status == expected)
