"""The dashboard's Jinja environment (autoescaped) and the filters its templates use."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig
from markupsafe import Markup

TEMPLATES = Path(__file__).parent / "templates"
BODY_PREVIEW_CHARS = 2000


def when(moment: datetime | None) -> str:
    """A UTC time as the dashboard shows it everywhere: 2026-11-24 09:00:00Z."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def local(moment: datetime | None) -> str:
    """A time in its own zone, with the zone's abbreviation and offset."""
    if moment is None:
        return "—"
    return moment.strftime("%a %Y-%m-%d %H:%M:%S %Z (UTC%z)")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    else:
        text = f"{int(seconds)} s"
    return f"in {text}" if future else f"{text} ago"


def count(value: int) -> str:
    return f"{value:,}"


def milliseconds(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.0f} ms"


def truncated(text: str | None, limit: int = BODY_PREVIEW_CHARS) -> str:
    if text is None:
        return ""
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def sparkline(values: list[float | None] | list[int], width: int = 240, height: int = 48) -> Markup:
    """A small inline SVG line of `values` (None leaves a gap), scaled to the largest one."""
    points = [v for v in values if v is not None]
    top = max(points, default=0) or 1
    step = width / max(len(values) - 1, 1)
    segments: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            segments.append([])
            continue
        y = height - 2 - (height - 4) * (value / top)
        segments[-1].append(f"{i * step:.1f},{y:.1f}")
    lines = "".join(f'<polyline points="{" ".join(s)}" />' for s in segments if s)
    return Markup(  # noqa: S704 - built only from numbers
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' preserveAspectRatio="none" role="img">{lines}</svg>'
    )


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        when=when, local=local, ago=ago, count=count, ms=milliseconds, truncated=truncated, pretty_json=pretty_json
    )
    environment.globals["sparkline"] = sparkline
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))
