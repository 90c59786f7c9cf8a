"""Ports picked before they are listened on must not be picked twice."""

from __future__ import annotations

import pytest

from scheduler.embedded import free_port

pytestmark = pytest.mark.unit


def test_free_port_never_hands_out_a_port_twice() -> None:
    # The kernel gives a just-released port to a later bind readily: 2,000 plain binds to port 0 repeat about 140.
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)
