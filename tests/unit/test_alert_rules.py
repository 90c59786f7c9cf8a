"""The Prometheus alert rules and the Grafana dashboard in deploy/: the rules pass `promtool check rules`, their
unit tests on synthetic series (deploy/prometheus/alerts_test.yml) pass `promtool test rules`, and the dashboard is
a well-formed Grafana dashboard whose every query is valid PromQL (checked by promtool as recording rules).

promtool comes from Debian's `prometheus` package; without it these tests are skipped, unless
SCHEDULER_REQUIRE_PROMTOOL is set (CI sets it), when they fail instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "scheduler-dashboard.json"
# Grafana's grid is 24 columns wide.
GRID_COLUMNS = 24

# The part of Grafana's dashboard model (schemaVersion 39) a provisioned dashboard must have right to load: every
# panel placed on the grid, every query with its reference id and the Prometheus data source variable.
DASHBOARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {"list": {"type": "array", "items": {"type": "object", "required": ["name", "type"]}}},
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"enum": ["row", "timeseries", "stat", "gauge", "table", "bargauge", "text"]},
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {k: {"type": "integer", "minimum": 0} for k in ("h", "w", "x", "y")},
                    },
                    "datasource": {
                        "type": "object",
                        "required": ["type", "uid"],
                        "properties": {"type": {"const": "prometheus"}, "uid": {"const": "${datasource}"}},
                    },
                    "targets": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr"],
                            "properties": {"refId": {"type": "string"}, "expr": {"type": "string", "minLength": 1}},
                        },
                    },
                },
            },
        },
    },
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "no promtool: install Debian's prometheus package (apt-get install prometheus)"
        if os.environ.get("SCHEDULER_REQUIRE_PROMTOOL"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_the_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    tool = promtool()
    assert "SUCCESS: 8 rules found" in run(tool, "check", "rules", str(RULES))
    assert "SUCCESS" in run(tool, "test", "rules", str(RULE_TESTS))


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    fired = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == fired


def test_the_dashboard_is_a_well_formed_grafana_dashboard() -> None:
    model = dashboard()
    jsonschema.validate(model, DASHBOARD_SCHEMA)
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in model["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        mine = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["type"] == "row" or refs, f"{panel['title']} queries nothing"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    tool = promtool()
    # promtool checks expressions as recording rules; Grafana's $__rate_interval becomes a plain range.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run(tool, "check", "rules", str(path))


def queried_metrics() -> set[str]:
    """Every metric name the dashboard and the alert rules query."""
    texts = [
        *dashboard_queries(),
        *(r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]),
    ]
    return {name for text in texts for name in re.findall(r"\bscheduler_[a-z_]+\b", text)}


def test_the_dashboard_shows_what_the_issue_names() -> None:
    queried = queried_metrics()
    for metric in (
        "scheduler_occurrences_published_total",  # fires per second
        "scheduler_fire_lateness_seconds_bucket",  # lateness percentiles
        "scheduler_deliveries_total",  # delivery outcomes
        "scheduler_retries_scheduled_total",
        "scheduler_dead_letters_total",
        "scheduler_consumer_pending",  # consumer lag per service
        "scheduler_projection_lag_events",  # projector lag
        "scheduler_ticker_partitions_held",  # lease ownership
        "scheduler_projector_streams_held",
    ):
        assert metric in queried, metric
