"""Task jobs run in separate worker processes (`scheduler worker`), against `scheduler dev`."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest

from shared.contracts.subjects import Names
from tests.e2e.conftest import DevServer
from tests.e2e.harness import SCHEDULER, Api, start_process, stop_process
from tests.e2e.test_nexus_api import nexus_create
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


@contextmanager
def worker_process(
    dev: DevServer, log: Path, app: str = "tests.e2e.worker_app:worker", cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "NATS_", "DATABASE_"))}
    env |= {"NATS_URL": dev.nats_url, "SCHEDULER_NAMESPACE": dev.namespace}
    process = start_process(["worker", "--app", app], env, log, cwd=cwd)
    try:
        yield process
    finally:
        assert stop_process(process) == 0, log.read_text()[-3000:]


async def run_now(api: Api, job: dict[str, Any], **overrides: Any) -> str:
    status, accepted = await api.call("POST", f"/api/v1/jobs/{job['id']}/execute", json=overrides or None)
    assert status == 200, accepted
    return str(accepted["task_id"])


async def execution(api: Api, job: dict[str, Any], task_id: str) -> dict[str, Any]:
    status, runs = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions?limit=500")
    assert status == 200, runs
    return next(r for r in runs if r["task_id"] == task_id)


async def finished(api: Api, job: dict[str, Any], task_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        run = await execution(api, job, task_id)
        return run if run["status"] in ("completed", "failed") else None

    return await eventually(done, timeout=30, what=f"task run {task_id} to finish")  # type: ignore[no-any-return]


def task_job(api: Api, name: str) -> Any:
    return nexus_create(api, task_name=name, task_args=[], task_kwargs={}, cron_expression="0 0 1 1 *")


async def test_a_task_waits_for_a_worker_then_runs_with_overrides(
    dev_server: DevServer, api: Api, tmp_path: Path
) -> None:
    job = await task_job(api, "tests.add")
    task_id = await run_now(api, job, task_args=[1, 2], task_kwargs={"x": 1})
    queued = await execution(api, job, task_id)
    assert queued["status"] == "pending"
    with worker_process(dev_server, tmp_path / "worker.log"):
        run = await finished(api, job, task_id)
        assert run["status"] == "completed", run
        assert run["result"]["sum"] == 3 and run["result"]["kwargs"] == {"x": 1}
        assert run["worker_name"].startswith("test-worker@")
        assert run["duration_seconds"] is not None and run["error_message"] is None

        status, other_surface = await api.call("GET", f"/api/jobs/{job['uuid']}/executions")
        assert status == 200
        assert other_surface["items"][0]["id"] == task_id
        assert other_surface["items"][0]["status"] == "success"


async def test_failures_timeouts_and_results_that_are_not_json(dev_server: DevServer, api: Api, tmp_path: Path) -> None:
    jobs = {name: await task_job(api, name) for name in ("tests.fail", "tests.slow", "tests.not_json")}
    with worker_process(dev_server, tmp_path / "worker.log"):
        runs = {name: await finished(api, job, await run_now(api, job)) for name, job in jobs.items()}
    failed = runs["tests.fail"]
    assert (failed["status"], failed["raw_status"]) == ("failed", "failure")
    assert failed["error_message"] == "ValueError: this task always fails"
    assert "raise ValueError" in failed["traceback"]
    slow = runs["tests.slow"]
    assert (slow["status"], slow["raw_status"]) == ("failed", "timed_out")
    assert "within 1 s" in slow["error_message"]
    assert "not JSON" in runs["tests.not_json"]["error_message"]


async def test_a_failing_task_is_retried_by_the_jobs_policy_then_dead_lettered(
    dev_server: DevServer, api: Api, tmp_path: Path
) -> None:
    job = await nexus_create(
        api, task_name="tests.fail", task_args=[], task_kwargs={}, max_retries=2, retry_delay=0.5, retry_backoff=True
    )
    with worker_process(dev_server, tmp_path / "worker.log"):
        first = await run_now(api, job)

        async def three_attempts() -> list[dict[str, Any]] | None:
            status, runs = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions")
            assert status == 200, runs
            return runs if len(runs) == 3 and runs[0]["raw_status"] == "dead_letter" else None

        runs = await eventually(three_attempts, timeout=30, what="three attempts of the failing task")
    runs.reverse()
    assert runs[0]["task_id"] == first
    assert [(r["attempt_number"], r["is_retry"], r["raw_status"]) for r in runs] == [
        (1, False, "failure"),
        (2, True, "failure"),
        (3, True, "dead_letter"),
    ]
    assert all(r["status"] == "failed" and "this task always fails" in r["error_message"] for r in runs)


async def test_two_workers_share_the_load(dev_server: DevServer, api: Api, tmp_path: Path) -> None:
    job = await task_job(api, "tests.sleepy")
    with worker_process(dev_server, tmp_path / "a.log"), worker_process(dev_server, tmp_path / "b.log"):
        # Both must be pulling before the runs are queued, or the first one up takes them all.
        await pulling_workers(dev_server, "tests.sleepy", at_least=2)
        task_ids = [await run_now(api, job) for _ in range(12)]
        results = [await finished(api, job, task_id) for task_id in task_ids]
    assert all(r["status"] == "completed" for r in results)
    assert len({r["result"] for r in results}) == 2, "both worker processes ran some"


async def pulling_workers(dev: DevServer, task_name: str, at_least: int) -> None:
    names = Names(dev.namespace)
    nc = await nats.connect(dev.nats_url)
    try:
        js = nc.jetstream()

        async def waiting() -> bool:
            try:
                info = await js.consumer_info(names.tasks_stream, names.task_consumer(task_name))
            except nats.js.errors.NotFoundError:
                return False
            return (info.num_waiting or 0) >= at_least

        await eventually(waiting, timeout=30, what=f"{at_least} workers pulling {task_name}")
    finally:
        await nc.close()


def test_worker_refuses_a_bad_app() -> None:
    for app, message in (("tests.e2e.worker_app", "module:attribute"), ("tests.e2e.nothing:worker", "cannot load")):
        result = subprocess.run(
            [SCHEDULER, "worker", "--app", app],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert message in result.stderr, result.stderr


async def test_the_documented_worker_example_runs(dev_server: DevServer, api: Api, tmp_path: Path) -> None:
    page = (Path(__file__).parents[2] / "docs" / "workers.md").read_text()
    example = re.search(r"```python\n(# reports\.py\n.*?)```", page, re.DOTALL)
    assert example, "the worker example of docs/workers.md (a python block starting '# reports.py') is gone"
    (tmp_path / "reports.py").write_text(example[1])
    report = await task_job(api, "tasks.generate_report")
    cleanup = await task_job(api, "tasks.cleanup")
    with worker_process(dev_server, tmp_path / "worker.log", app="reports:worker", cwd=tmp_path):
        run = await finished(api, report, await run_now(api, report, task_kwargs={"format": "html"}))
        assert (run["status"], run["result"]) == ("completed", {"format": "html", "pages": 3})
        run = await finished(api, cleanup, await run_now(api, cleanup, task_kwargs={"days": 7}))
        assert (run["status"], run["result"]) == ("completed", {"removed": 0})


async def test_a_scheduled_task_job_runs_in_the_worker_on_its_schedule(
    dev_server: DevServer, api: Api, tmp_path: Path
) -> None:
    job = await nexus_create(
        api, task_name="tests.add", task_args=[2, 3], task_kwargs={}, cron_expression="* * * * * *"
    )
    with worker_process(dev_server, tmp_path / "worker.log"):

        async def two_runs() -> list[dict[str, Any]] | None:
            status, runs = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions")
            assert status == 200, runs
            done = [r for r in runs if r["status"] == "completed"]
            return done if len(done) >= 2 else None

        runs = await eventually(two_runs, timeout=30, what="two scheduled runs of the task")
        status, _ = await api.call("POST", f"/api/v1/jobs/{job['id']}/pause")
        assert status == 200
    assert all(r["result"]["sum"] == 5 and r["worker_name"].startswith("test-worker@") for r in runs)
    nominal = sorted(datetime.fromisoformat(r["scheduled_at"].replace("Z", "+00:00")) for r in runs)
    assert all(t.microsecond == 0 for t in nominal) and len(set(nominal)) == len(nominal), nominal
    status, got = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert got["last_run_at"] is not None
