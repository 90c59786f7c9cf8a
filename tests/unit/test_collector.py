"""A service's collector once it is up: what it holds is frozen, young passes come less often, and garbage made
afterwards in reference cycles is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared.runtime.collector import OLDER_THRESHOLD, YOUNG_THRESHOLD, settle_collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_what_lives_and_later_cycles_are_still_collected() -> None:
    settle_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None, "a cycle is not freed by reference counting alone"
    gc.collect()
    assert gone() is None, "a cycle made after settling was never collected"
