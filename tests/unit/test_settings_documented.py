"""Every setting is documented: a description where it is declared, and a row in the table of docs/configuration.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.settings import Settings, variable

pytestmark = pytest.mark.unit

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _table_variables() -> set[str]:
    """The variables named in the first column of the table on the Configuration page (before any `## ` section)."""
    page = CONFIGURATION.read_text()
    assert page.startswith("# Configuration\n"), "docs/configuration.md no longer starts with its title"
    section = page.split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_every_setting_is_in_the_configuration_table_and_nothing_else_is() -> None:
    declared = {variable(name) for name in Settings.model_fields}
    documented = _table_variables()
    assert declared - documented == set(), "settings missing from the table of docs/configuration.md"
    assert documented - declared == set(), "docs/configuration.md rows for variables Settings does not read"


def test_every_setting_has_a_description() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert undocumented == []
