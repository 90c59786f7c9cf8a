"""Comparing the JetStream configuration we want with the one the server has."""

from __future__ import annotations

from collections.abc import Iterable


def _normal(value: object) -> object:
    # The server answers durations as floats and lists in its own order; None, 0, [] and False all mean "unset".
    value = value or 0
    if isinstance(value, list | tuple):
        return sorted(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def config_drift(wanted: object, actual: object, fields: Iterable[str]) -> list[str]:
    """One line per field that differs, as 'field: have -> want'."""
    diffs = []
    for field in fields:
        want, have = getattr(wanted, field), getattr(actual, field)
        if _normal(want) != _normal(have):
            diffs.append(f"{field}: {have!r} -> {want!r}")
    return diffs
