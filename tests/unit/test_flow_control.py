"""Flow control's decision on one key's entry (pure), the dispatcher's spacing of looks, and the bounds a job's flow
control is checked against."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from services.dispatcher.flow_gate import MAX_LOOK_SECONDS, FlowGate
from shared.bus.flow_control import PARALLELISM_RETRY_SECONDS, Wait, _KeyState, decided
from shared.contracts.jobs import FlowControl
from shared.domain.errors import ValidationFailed
from shared.domain.job_checks import checked_flow_control

pytestmark = pytest.mark.unit

HOLD = 8.0


def take(state: _KeyState, flow: FlowControl, holder: str, now: float) -> _KeyState:
    changed = decided(state, flow, holder, now, HOLD)
    assert isinstance(changed, _KeyState), changed
    return changed


def test_parallelism_lets_that_many_in_and_the_next_waits() -> None:
    flow, state = FlowControl(key="k", parallelism=3), _KeyState()
    for n in range(3):
        state = take(state, flow, f"e{n}", 100.0)
    assert set(state.holders) == {"e0", "e1", "e2"} and state.holders["e0"] == 100.0 + HOLD
    assert decided(state, flow, "e3", 100.0, HOLD) == Wait(PARALLELISM_RETRY_SECONDS, "parallelism")
    # The same execution again (its message redelivered) keeps its place instead of waiting for one.
    assert take(state, flow, "e1", 101.0).holders["e1"] == 101.0 + HOLD


def test_a_place_whose_holder_died_lapses_after_the_hold() -> None:
    flow = FlowControl(key="k", parallelism=1)
    state = take(_KeyState(), flow, "dead", 100.0)
    assert isinstance(decided(state, flow, "next", 100.0 + HOLD - 0.1, HOLD), Wait)
    assert set(take(state, flow, "next", 100.0 + HOLD + 0.1).holders) == {"next"}


def test_rate_counts_starts_in_fixed_windows_and_says_how_long_until_the_next() -> None:
    flow = FlowControl(key="k", rate=2, period_seconds=60)
    state = take(take(_KeyState(), flow, "a", 120.5), flow, "b", 150.0)
    assert (state.window, state.started, state.holders) == (120.0, 2, {})
    wait = decided(state, flow, "c", 170.0, HOLD)
    assert wait == Wait(10.0, "rate")
    state = take(state, flow, "c", 180.0)  # the next window
    assert (state.window, state.started) == (180.0, 1)


def test_rate_and_parallelism_together_a_rate_wait_takes_no_place() -> None:
    flow = FlowControl(key="k", parallelism=5, rate=1, period_seconds=10)
    state = take(_KeyState(), flow, "a", 0.0)
    assert isinstance(decided(state, flow, "b", 1.0, HOLD), Wait)
    assert set(state.holders) == {"a"}


def _msg(delivered: int) -> Any:
    return SimpleNamespace(metadata=SimpleNamespace(num_delivered=delivered))


def test_waiting_deliveries_look_again_later_each_time_up_to_a_bound_and_rate_waits_exactly() -> None:
    parallel = Wait(PARALLELISM_RETRY_SECONDS, "parallelism")
    looks = [FlowGate._look_again_in(parallel, _msg(n)) for n in (1, 2, 4, 100)]
    assert looks == [0.25, 0.5, 1.0, MAX_LOOK_SECONDS]
    assert FlowGate._look_again_in(Wait(3.5, "rate"), _msg(7)) == 3.5


@pytest.mark.parametrize(
    ("flow", "says"),
    [
        (FlowControl(key="has space"), "key"),
        (FlowControl(key="k" * 65, parallelism=1), "key"),
        (FlowControl(key="billing"), "a parallelism, a rate or both"),
        (FlowControl(key="billing", parallelism=0), "parallelism"),
        (FlowControl(key="billing", rate=2_000_000), "rate"),
        (FlowControl(key="billing", rate=5, period_seconds=0.5), "period_seconds"),
    ],
)
def test_bad_flow_control_is_refused_saying_what(flow: FlowControl, says: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        checked_flow_control(flow)
    assert refused.value.field == "flow_control" and says in refused.value.detail


def test_good_flow_control_is_kept_as_given() -> None:
    flow = FlowControl(key="billing-api_2", parallelism=10, rate=100, period_seconds=60)
    assert checked_flow_control(flow) == flow and checked_flow_control(None) is None
