"""Every setting is documented: a description where it is declared, and a row in the README's Configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.settings import Settings, variable

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def _table_variables() -> set[str]:
    """The variables named in the first column of the table under `## Configuration`."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_every_setting_is_in_the_readme_table_and_nothing_else_is() -> None:
    declared = {variable(name) for name in Settings.model_fields}
    documented = _table_variables()
    assert declared - documented == set(), "settings missing from the README's Configuration table"
    assert documented - declared == set(), "README rows for variables Settings does not read"


def test_every_setting_has_a_description() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert undocumented == []
