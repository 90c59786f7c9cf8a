"""One reader of configuration: only the settings package and the CLI's entry read the environment."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# tracing.py reads whether the standard OTEL_* variables ask for traces: OpenTelemetry's SDK and exporter read those
# variables themselves (endpoint, headers, sampler, batch sizes), so they are not the scheduler's settings.
ALLOWED = {"shared/settings/loading.py", "scheduler/cli.py", "shared/observability/tracing.py"}
NAMES = {"environ", "getenv", "environb", "getenvb"}  # os.environ, os.getenv, `from os import environ`, ...


def _reads(source: str) -> list[int]:
    """Lines that name the environment in code (comments and strings do not count)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [token.start[0] for token in tokens if token.type == tokenize.NAME and token.string in NAMES]


def test_only_the_settings_and_the_cli_entry_read_the_environment() -> None:
    readers = {
        path.relative_to(ROOT).as_posix(): lines
        for package in ("services", "shared", "scheduler")
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := _reads(path.read_text()))
    }
    assert set(readers) - ALLOWED == set(), {path: readers[path] for path in set(readers) - ALLOWED}


def test_the_cli_reads_it_once_in_its_entry() -> None:
    """Settings come from one read in `main`; the only other mention is `dev` handing its environment on, unread,
    to the service processes it starts (PATH, HOME, ... with dev's settings written over it)."""
    source = (ROOT / "scheduler/cli.py").read_text()
    read, handed_on = _reads(source)
    entry = source.split("\ndef main(", 1)[1].split("\ndef ", 1)[0]
    assert "load_settings(os.environ" in entry and "load_settings(os.environ" in source.splitlines()[read - 1]
    dev = source.split("\ndef dev(", 1)[1].split("\ndef ", 1)[0]
    assert "inherited=os.environ" in dev and "inherited=os.environ" in source.splitlines()[handed_on - 1]


def test_the_check_sees_every_way_to_read_it() -> None:
    assert _reads("import os\nos.environ['X']\nos.getenv('Y')\nfrom os import environ\n") == [2, 3, 4]
    assert _reads("# os.environ\nx = 'os.getenv'\n") == []
