"""The dashboard shows every execution status the API knows, each once."""

from __future__ import annotations

from typing import get_args

import pytest

from services.api.core.fields import ExecutionStatus
from services.api.ui.queries import OUTCOMES

pytestmark = pytest.mark.unit


def test_every_status_is_shown_once() -> None:
    assert sorted(OUTCOMES) == sorted(get_args(ExecutionStatus))
