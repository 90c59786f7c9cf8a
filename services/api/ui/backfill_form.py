"""The job page's backfill form: a range of UTC times (datetime-local boxes) and a rate, read into what
Backfills.start takes; what it holds as typed, so the page can show it again with the core's error on its box."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.api.core.api_errors import ValidationFailedError
from services.api.ui.views import time_param
from shared.contracts.backfills import (
    DEFAULT_BACKFILL_RATE,
    MAX_BACKFILL_OCCURRENCES,
    MAX_BACKFILL_RATE,
    MAX_RUNNING_BACKFILLS,
    MIN_BACKFILL_RATE,
)

# The form's boxes; an error on any other field (the job itself: a chained job, nothing to run) is the form's.
BOXES = ("start", "end", "per_second")
_SHOWN = "%Y-%m-%dT%H:%M"
# What the form says of the core's limits.
LIMITS = {
    "occurrences": MAX_BACKFILL_OCCURRENCES,
    "running": MAX_RUNNING_BACKFILLS,
    "min_rate": MIN_BACKFILL_RATE,
    "max_rate": MAX_BACKFILL_RATE,
}


@dataclass(frozen=True, slots=True)
class BackfillInput:
    start: datetime
    end: datetime
    per_second: int


@dataclass(slots=True)
class BackfillForm:
    """What the form holds, as typed, and its errors by box ("form" for one about the whole request)."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def fail(self, detail: str, box: str | None) -> None:
        self.errors[box if box in BOXES else "form"] = detail


def new_backfill_form(now: datetime) -> BackfillForm:
    """The hour up to the minute before the last whole one (a range must end a little before now, so the ticker has
    fired what it will), at the default rate."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    return BackfillForm(
        values={
            "start": (end - timedelta(hours=1)).strftime(_SHOWN),
            "end": end.strftime(_SHOWN),
            "per_second": str(DEFAULT_BACKFILL_RATE),
        }
    )


def backfill_form_from(raw: Mapping[str, Any]) -> BackfillForm:
    return BackfillForm(values={k: v.strip() for k, v in raw.items() if k in BOXES and isinstance(v, str)})


def backfill_input(form: BackfillForm) -> BackfillInput:
    """The range and rate; a time without an offset (what a datetime-local box sends) is UTC. ValidationFailedError
    on the box at fault; the limits (a past range, the rate's bounds, how many occurrences) are the core's."""
    times: dict[str, datetime] = {}
    for name in ("start", "end"):
        moment = time_param(form.get(name), name)
        if moment is None:
            raise ValidationFailedError(f"{name}: a time is required", name)
        times[name] = moment
    raw = form.get("per_second") or str(DEFAULT_BACKFILL_RATE)
    try:
        per_second = int(raw)
    except ValueError:
        detail = f"per_second: must be a whole number, {MIN_BACKFILL_RATE}-{MAX_BACKFILL_RATE}, not {raw!r}"
        raise ValidationFailedError(detail, "per_second") from None
    return BackfillInput(start=times["start"], end=times["end"], per_second=per_second)
