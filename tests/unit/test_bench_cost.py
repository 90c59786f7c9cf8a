"""The benchmark's CPU bookkeeping: a window's CPU per process from two snapshots of a process tree, and per
execution."""

from __future__ import annotations

import pytest

from bench.compare import ratios, sustained_x_calibration
from bench.cost import Cost
from bench.cpu import Reading, arrivals_between, per_execution_ms, used_between

pytestmark = pytest.mark.unit

DEV, DISPATCHER, POSTMASTER, BACKEND, LATE = (10, 1.0), (11, 2.0), (20, 1.0), (21, 3.0), (12, 9.0)


def test_a_process_alive_at_both_readings_counts_its_difference_in_its_group() -> None:
    before = {DEV: Reading("dev", None, 1.0), DISPATCHER: Reading("dispatcher", DEV, 5.0)}
    after = {DEV: Reading("dev", None, 1.5), DISPATCHER: Reading("dispatcher", DEV, 7.25)}
    assert used_between(before, after) == pytest.approx({"dev": 0.5, "dispatcher": 2.25})


def test_a_process_stays_in_the_group_it_had_at_the_first_reading() -> None:
    # Ended and not yet reaped, a child no longer shows the command line its role was read from.
    before = {DEV: Reading("dev", None, 1.0), DISPATCHER: Reading("dispatcher", DEV, 5.0)}
    after = {DEV: Reading("dev", None, 1.0), DISPATCHER: Reading("dev child (python)", DEV, 6.0)}
    assert used_between(before, after) == pytest.approx({"dev": 0.0, "dispatcher": 1.0})


def test_a_child_started_in_the_window_counts_all_of_its_time() -> None:
    before = {DEV: Reading("dev", None, 1.0)}
    after = {DEV: Reading("dev", None, 1.0), LATE: Reading("ticker", DEV, 0.75)}
    assert used_between(before, after) == pytest.approx({"dev": 0.0, "ticker": 0.75})


def test_a_child_gone_in_the_window_is_counted_once_in_the_ancestor_that_reaped_it() -> None:
    # The backend had used 2 s at the first reading and 3 s when it ended; the postmaster, 1 s of its own
    # throughout, now carries the backend's 3 s as reaped children's time.
    before = {POSTMASTER: Reading("postgres", None, 1.0), BACKEND: Reading("postgres", POSTMASTER, 2.0)}
    after = {POSTMASTER: Reading("postgres", None, 4.0)}
    assert used_between(before, after) == pytest.approx({"postgres": 1.0})


def test_a_gone_process_is_charged_to_its_nearest_living_ancestor_even_across_a_gone_parent() -> None:
    grandchild = (13, 4.0)
    before = {
        DEV: Reading("dev", None, 1.0),
        DISPATCHER: Reading("dispatcher", DEV, 2.0),
        grandchild: Reading("dispatcher", DISPATCHER, 0.5),
    }
    after = {DEV: Reading("dev", None, 1.0 + 3.0 + 1.0)}  # both reaped: the dispatcher's 3 s and the grandchild's 1 s
    assert used_between(before, after) == pytest.approx({"dev": 1.5})


def test_a_gone_root_is_not_counted_as_negative_time() -> None:
    before = {DEV: Reading("dev", None, 3.0)}
    assert used_between(before, {}) == {}


def test_cpu_per_execution_is_all_processes_over_the_executions() -> None:
    cost = Cost({"dispatcher": 1.5, "postgres": 0.25, "nats": 0.25}, executions=1000)
    assert cost.total_seconds == pytest.approx(2.0)
    assert cost.ms_per_execution == pytest.approx(2.0)
    assert [row["process"] for row in cost.by_process()] == ["dispatcher", "postgres", "nats"]
    assert cost.by_process()[0]["cpu_ms_per_execution"] == pytest.approx(1.5)
    assert cost.as_dict()["cpu_seconds_by_process"] == {"dispatcher": 1.5, "postgres": 0.25, "nats": 0.25}


def test_no_execution_has_no_cost_per_execution() -> None:
    assert per_execution_ms(1.0, 0) is None
    assert Cost({"dev": 1.0}, executions=0).as_dict()["cpu_ms_per_execution"] is None


def test_the_executions_are_the_arrivals_between_the_readings_repeats_included() -> None:
    calls = [("a", 99.9), ("a", 100.0), ("a", 100.2), ("b", 104.99), ("c", 105.0)]
    assert arrivals_between(calls, 100.0, 105.0) == 3


def test_ratios_are_ours_over_theirs_and_absent_where_they_cannot_be_taken() -> None:
    ours = {"p99_ms": 300.0, "cpu_ms_per_execution": 2.0, "max_ms": 5.0}
    theirs = {"p99_ms": 150.0, "cpu_ms_per_execution": None, "max_ms": 0.0}
    keys = ("p99_ms", "cpu_ms_per_execution", "max_ms", "p50_ms")
    assert ratios(ours, theirs, keys) == {"p99_ms": 2.0, "cpu_ms_per_execution": None, "max_ms": None, "p50_ms": None}


def test_the_sustained_rate_is_scaled_by_the_mean_calibration() -> None:
    assert sustained_x_calibration(2000, 0.5, 0.6) == pytest.approx(1100.0)
    assert sustained_x_calibration(None, 0.5, 0.6) is None
