"""A benchmark's new figures beside the previous result file's, older formats included."""

from __future__ import annotations

from typing import Any

import pytest

from bench.compare import comparison, comparison_rows, key_figures

pytestmark = pytest.mark.unit


def _precision(p99: float, cpu: float | None, **extra: Any) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [
        {"jobs/s": 1000, "system": "scheduler", "p99_ms": p99, "lost": 0},
        {"jobs/s": 1000, "system": "apscheduler", "p99_ms": 500.0},
        {"jobs/s": 1000, "system": "ratio (scheduler / apscheduler)", "p99_ms": round(p99 / 500.0, 2)},
    ]
    if cpu is not None:
        rows[0]["cpu_ms_per_execution"] = cpu
        rows[1]["cpu_ms_per_execution"] = 0.5
        rows[2]["cpu_ms_per_execution"] = round(cpu / 0.5, 2)
    return {"workload": "precision", "calibration_seconds": 0.5, "rows": rows} | extra


def test_precision_figures_name_the_side_the_rate_and_the_ratio() -> None:
    figures = key_figures(_precision(2500.0, 1.0, layout="dev", commit="abc1234"))
    assert figures["layout"] == "dev"
    assert figures["commit"] == "abc1234"
    assert figures["1000 jobs/s scheduler: p99 ms"] == 2500.0
    assert figures["1000 jobs/s APScheduler: CPU ms per execution"] == 0.5
    assert figures["1000 jobs/s ratio to APScheduler: p99"] == 5.0
    assert figures["1000 jobs/s ratio to APScheduler: CPU per execution"] == 2.0


def test_a_previous_file_without_cpu_figures_shows_them_as_missing() -> None:
    previous = _precision(2500.0, None)  # written before CPU was measured: no layout, commit or CPU
    current = _precision(1200.0, 1.0, layout="processes", commit="abc1234")
    rows = {row["figure"]: (row["previous"], row["now"]) for row in comparison_rows(previous, current)}
    assert rows["1000 jobs/s scheduler: p99 ms"] == (2500.0, 1200.0)
    assert rows["1000 jobs/s scheduler: CPU ms per execution"] == (None, 1.0)
    assert rows["layout"] == (None, "processes")
    assert rows["calibration when written (s)"] == (0.5, 0.5)
    assert "when" not in rows  # in neither


def test_figures_only_the_previous_run_had_are_kept_after_the_new_ones() -> None:
    previous = {"workload": "throughput", "runs": [{"rate": 500, "p99_ms": 700.0}, {"rate": 2000, "p99_ms": 9000.0}]}
    current = {"workload": "throughput", "runs": [{"rate": 500, "p99_ms": 300.0, "sustained": True}],
               "highest_sustained": 500, "highest_sustained_x_calibration": 250.0}  # fmt: skip
    figures = [row["figure"] for row in comparison_rows(previous, current)]
    assert figures.index("500/s: p99 ms") < figures.index("highest sustained x calibration s")
    assert figures[-1] == "2000/s: p99 ms"


def test_the_comparison_is_a_markdown_table_with_a_heading() -> None:
    text = comparison(_precision(2500.0, None), _precision(1200.0, 1.0))
    assert "## Beside the previous run" in text
    assert "| 1000 jobs/s scheduler: p99 ms | 2500.0 | 1200.0 |" in text
    assert "| 1000 jobs/s scheduler: CPU ms per execution | - | 1.0 |" in text
