"""`uv run python -m bench precision --jobs 100 --seconds 60`: runs a workload, writes JSON and a Markdown table."""

from __future__ import annotations

import asyncio
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

import click

from bench.precision import run_apscheduler, run_scheduler


@click.group()
def main() -> None:
    """Benchmarks of the scheduler."""


@main.command("precision")
@click.option("--jobs", "sizes", type=int, multiple=True, default=(100,), show_default=True, help="Repeatable.")
@click.option("--seconds", type=int, default=60, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"), show_default=True)
def precision_command(sizes: tuple[int, ...], seconds: int, out: Path) -> None:
    """N jobs each firing every second: lateness percentiles, lost and duplicated, here and on APScheduler."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for jobs in sizes:
        ours = asyncio.run(run_scheduler(jobs, seconds, out / "system"))
        theirs = asyncio.run(run_apscheduler(jobs, seconds))
        rows.append({"jobs": jobs, "seconds": seconds, "scheduler": ours.as_dict(), "apscheduler": theirs.as_dict()})
        click.echo(f"{jobs} jobs: scheduler {ours}\n{jobs} jobs: apscheduler {theirs}")
    result = {
        "workload": "precision",
        "at": datetime.now(UTC).isoformat(),
        "machine": platform.platform(),
        "runs": rows,
    }
    (out / "precision.json").write_text(json.dumps(result, indent=2))
    lines = ["| jobs/s | system | expected | lost | duplicated | p50 ms | p95 ms | p99 ms | max ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for row in rows:
        for name in ("scheduler", "apscheduler"):
            f = row[name]
            lines.append(f"| {row['jobs']} | {name} | {f['expected']} | {f['lost']} | {f['duplicated']} | "
                         f"{f['p50_ms']} | {f['p95_ms']} | {f['p99_ms']} | {f['max_ms']} |")  # fmt: skip
    (out / "precision.md").write_text("\n".join(lines) + "\n")
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
