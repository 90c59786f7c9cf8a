"""Python processes that use the schemas exit cleanly: no native crash at interpreter exit.

msgspec 0.22 freed the compiled `pattern` of a `str` in a union with a container (the NEXUS `calendar_rule`: a dict
or a string) as if it were a type node, when the struct type's schema was freed at exit: `pytest -n 0` on a file
using both NEXUS job bodies died with a segmentation fault (exit 139) about one run in four. PYTHONMALLOC=debug
makes that use of freed memory crash every time, so these tests fail on every run while the bug is there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90  # subprocess.run kills the child when it runs over


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env |= {"PYTHONMALLOC": "debug", "PYTHONFAULTHANDLER": "1"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=TIMEOUT,
        check=False,
    )


# A whole pytest run in a child process (seconds): no unit test, it runs in the whole suite.
@pytest.mark.slow
@pytest.mark.parametrize("path", ["tests/unit/test_job_form.py"])
def test_a_test_file_run_serially_exits_cleanly(path: str, tmp_path: Path) -> None:
    assert Path(path).name != Path(__file__).name  # never this file: the run would start itself again
    result = _run(["-m", "pytest", "-n", "0", "-p", "no:cacheprovider", "-q", "--basetemp", str(tmp_path), path])
    assert result.returncode == 0, (result.returncode, result.stdout[-2000:], result.stderr[-3000:])
    assert " passed" in result.stdout and " failed" not in result.stdout, result.stdout[-2000:]


@pytest.mark.unit
def test_a_pattern_in_a_union_with_a_container_is_freed_cleanly() -> None:
    program = """
import gc
from typing import Annotated, Any
import msgspec
from services.api.nexus.schemas import NexusJobCreate, NexusJobUpdate

class Rule(msgspec.Struct):
    rule: dict[str, Any] | Annotated[str, msgspec.Meta(pattern="^[^,]*$")] | None = None

assert msgspec.convert({"rule": "a"}, Rule).rule == "a"
msgspec.convert({"name": "n", "calendar_rule": "FREQ=DAILY"}, NexusJobCreate)
msgspec.convert({"calendar_rule": {"times": ["09:00"]}}, NexusJobUpdate)
del Rule
gc.collect()
print("collected")
"""
    result = _run(["-c", program])
    assert (result.returncode, result.stdout.strip()) == (0, "collected"), result.stderr[-3000:]
