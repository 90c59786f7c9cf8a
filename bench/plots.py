"""PNG plots of benchmark results (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def lateness(path: Path, title: str, series: Mapping[str, Sequence[float]]) -> Path:
    """The distribution of lateness (ms) of each named series, as a cumulative curve: the p99 is where it crosses
    0.99."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _cdfs(ax, series)
    ax.set_xlabel("lateness at the receiver (ms)")
    ax.set_ylabel("fraction of occurrences")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def throughput(path: Path, title: str, series: Mapping[str, Sequence[int]], targets: Mapping[str, int]) -> Path:
    """Deliveries per second over the window, one line per run, with its target rate dashed."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, per_second in series.items():
        (line,) = ax.plot(range(len(per_second)), per_second, label=name)
        if name in targets:
            ax.axhline(targets[name], color=line.get_color(), linewidth=0.8, linestyle="--")
    ax.set_xlabel("seconds into the window")
    ax.set_ylabel("first deliveries per second")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def latency(path: Path, title: str, series: Mapping[str, Sequence[float]]) -> Path:
    """Request latency distributions (ms), cumulative, log scale."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _cdfs(ax, {name: [v for v in values if v > 0] for name, values in series.items()})
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def _cdfs(ax: Axes, series: Mapping[str, Sequence[float]]) -> None:
    """One cumulative curve per series, and a line at 0.99 (where a curve crosses it is its p99)."""
    for name, values in series.items():
        ordered = sorted(values)
        if ordered:
            ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=name)
    ax.axhline(0.99, color="grey", linewidth=0.5, linestyle="--")


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
