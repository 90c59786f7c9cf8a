"""The code examples of scheduler-service-api.md, run as written against `scheduler dev`.

`spec_examples/` holds them verbatim. Only what the document leaves to the reader is filled in: the base URL,
the token, the account id and the webhook URL (a local receiver). The schedule "0 2 * * *" becomes every second,
so the test can see the job fire without waiting for 02:00.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DevServer, token_for
from tests.e2e.harness import Api
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).parent / "spec_examples"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

RUNNERS = {
    "example.py": [sys.executable],
    "example.mjs": ["node"],
    "example.sh": ["bash"],
}
TOOLS = {"example.mjs": ["node"], "example.sh": ["bash", "curl", "jq"]}


def filled_in(text: str, base_url: str, token: str, account: uuid.UUID, hook_url: str) -> str:
    for placeholder, value in {
        "http://localhost:8000": base_url,
        "your-jwt-token": token,
        "account-uuid": str(account),
        "https://api.example.com/webhook": hook_url,
        "0 2 * * *": "* * * * * *",
    }.items():
        assert placeholder in text, f"the example no longer contains {placeholder!r}"
        text = text.replace(placeholder, value)
    return text


@pytest.mark.parametrize("example", sorted(RUNNERS))
async def test_documented_example_runs_and_its_job_fires(
    example: str,
    dev_server: DevServer,
    api: Api,
    account_id: uuid.UUID,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    missing = [tool for tool in TOOLS.get(example, []) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    script = tmp_path / example
    script.write_text(
        filled_in(
            (EXAMPLES / example).read_text(),
            dev_server.base_url,
            token_for(account_id),
            account_id,
            receiver.url_for("/webhook"),
        )
    )
    result = subprocess.run(  # noqa: ASYNC221 - the example is the client under test; nothing else runs meanwhile
        [*RUNNERS[example], str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = re.search(rf"Created job: ({UUID})", result.stdout)
    webhook_id = re.search(rf"Created webhook: ({UUID})", result.stdout)
    assert job_id and webhook_id, result.stdout
    if example != "example.sh":
        assert re.search(r"Found \d+ executions", result.stdout), result.stdout

    async def fired() -> dict[str, Any] | None:
        status, page = await api.call("GET", f"/api/jobs/{job_id[1]}/executions?status=success")
        assert status == 200, page
        return page["items"][0] if page["items"] else None

    execution = await eventually(fired, timeout=20, what="the example's job to fire")
    assert execution["webhook_id"] == webhook_id[1]
    call = next(c for c in receiver.on("/webhook") if c.headers["webhook-id"] == execution["occurrence_id"])
    assert call.method == "POST"
    if "Bearer api-key" in (EXAMPLES / example).read_text():
        assert call.headers["Authorization"] == "Bearer api-key"
    assert call.body.replace(" ", "") == '{"action":"backup"}'
