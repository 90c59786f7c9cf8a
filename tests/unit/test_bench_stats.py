"""The benchmark's bookkeeping: lost, duplicated and lateness figures from arrivals."""

from __future__ import annotations

import pytest

from bench.stats import percentile, precision

pytestmark = pytest.mark.unit


def test_lateness_counts_first_arrivals_and_tells_lost_and_duplicated_apart() -> None:
    expected = {"a": 100.0, "b": 100.0, "c": 101.0}
    calls = [("a", 100.010), ("a", 100.500), ("c", 101.030), ("stranger", 100.0)]
    figures = precision(expected, calls)
    assert (figures.expected, figures.delivered, figures.lost, figures.duplicated) == (3, 2, 1, 1)
    assert figures.lateness_ms == pytest.approx((10.0, 30.0), abs=0.01)  # the repeat of "a" is not lateness
    assert figures.max_ms == pytest.approx(30.0, abs=0.1)
    assert "lateness_ms" not in figures.as_dict()


def test_percentile_picks_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (51.0, 99.0, 100.0)
