"""Figures side by side: this system beside APScheduler (ratios), and a run beside the previous one (the key
figures of a workload's result file and of the new one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.tables import table

SCHEDULER, APSCHEDULER = "scheduler", "apscheduler"

RATIOS = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "cpu_ms_per_execution")


def ratios(ours: dict[str, Any], theirs: dict[str, Any], keys: Sequence[str]) -> dict[str, float | None]:
    """Ours over theirs for each key; None where either is missing or theirs is zero."""
    return {k: round(ours[k] / theirs[k], 2) if ours.get(k) is not None and theirs.get(k) else None for k in keys}


def sustained_x_calibration(highest: int | None, at_start: float, at_end: float) -> float | None:
    """The highest sustained rate times the machine's calibration seconds (the mean of the readings before and
    after the runs): a rate in units of this machine's speed, comparable across runs on a faster or slower box."""
    if highest is None:
        return None
    return round(highest * (at_start + at_end) / 2, 1)


def key_figures(document: Mapping[str, Any]) -> dict[str, Any]:
    """The figures a run is judged by, named for a table row; those an older file lacks are simply absent."""
    figures: dict[str, Any] = {
        "when": document.get("at"),
        "commit": document.get("commit"),
        "layout": document.get("layout"),
        "calibration at start (s)": document.get("calibration_seconds_at_start"),
        "calibration when written (s)": document.get("calibration_seconds"),
    }
    workload = document.get("workload")
    if workload == "precision":
        figures |= _precision(document.get("rows", []))
    elif workload == "throughput":
        figures |= _throughput(document)
    return figures


def _precision(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for row in rows:
        jobs, system = row.get("jobs/s"), str(row.get("system", ""))
        if system in (SCHEDULER, APSCHEDULER):
            name = "APScheduler" if system == APSCHEDULER else system
            figures[f"{jobs} jobs/s {name}: p99 ms"] = row.get("p99_ms")
            figures[f"{jobs} jobs/s {name}: CPU ms per execution"] = row.get("cpu_ms_per_execution")
        elif system.startswith("ratio"):
            figures[f"{jobs} jobs/s ratio to APScheduler: p99"] = row.get("p99_ms")
            figures[f"{jobs} jobs/s ratio to APScheduler: CPU per execution"] = row.get("cpu_ms_per_execution")
    return figures


def _throughput(document: Mapping[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for run in document.get("runs", []):
        rate = run.get("rate")
        figures[f"{rate}/s: sustained"] = run.get("sustained")
        figures[f"{rate}/s: p99 ms"] = run.get("p99_ms")
        figures[f"{rate}/s: CPU ms per execution"] = run.get("cpu_ms_per_execution")
    figures["highest sustained (executions/s)"] = document.get("highest_sustained")
    figures["highest sustained x calibration s"] = document.get("highest_sustained_x_calibration")
    return figures


def comparison_rows(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per key figure of either run, this run's order first; what one run lacks is None."""
    before, now = key_figures(previous), key_figures(current)
    names = list(now) + [name for name in before if name not in now]
    rows = [{"figure": name, "previous": before.get(name), "now": now.get(name)} for name in names]
    return [row for row in rows if row["previous"] is not None or row["now"] is not None]


def comparison(previous: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """The Markdown section comparing the two runs."""
    return "\n## Beside the previous run\n\n" + table(comparison_rows(previous, current), ["figure", "previous", "now"])
