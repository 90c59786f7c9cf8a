"""Lateness figures from nominal times and arrivals."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Precision:
    expected: int
    delivered: int
    lost: int
    duplicated: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # Every delivered occurrence's lateness, for the plots (left out of the JSON).
    lateness_ms: tuple[float, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "lateness_ms"}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def precision(expected: dict[str, float], calls: list[tuple[str, float]]) -> Precision:
    """`expected`: occurrence id -> nominal Unix time; `calls`: (occurrence id, arrival) at the receiver."""
    counts = Counter(ident for ident, _ in calls)
    first: dict[str, float] = {}
    for ident, arrived in calls:
        first.setdefault(ident, arrived)
    lateness = [(first[i] - nominal) * 1000 for i, nominal in expected.items() if i in first]
    return Precision(
        expected=len(expected),
        delivered=sum(1 for i in expected if i in first),
        lost=sum(1 for i in expected if i not in first),
        duplicated=sum(n - 1 for i, n in counts.items() if i in expected and n > 1),
        p50_ms=round(statistics.median(lateness), 1) if lateness else float("nan"),
        p95_ms=round(percentile(lateness, 0.95), 1),
        p99_ms=round(percentile(lateness, 0.99), 1),
        max_ms=round(max(lateness), 1) if lateness else float("nan"),
        lateness_ms=tuple(lateness),
    )
