"""The processes `scheduler dev` starts: one per service, each with dev's settings in its environment."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from scheduler.dev import CHILD_ORDER, child_specs
from shared.settings import Settings, load_settings

pytestmark = pytest.mark.unit

PARENT = {"PATH": "/usr/bin", "HOME": "/home/dev", "NATS_URL": "nats://elsewhere:4222", "SCHEDULER_OPS_PORT": "9100"}


def _dev_settings(**changes: object) -> Settings:
    """Settings as dev has them once it has started its servers (see run_dev's `replaced`)."""
    decided: dict[str, object] = {
        "nats_url": "nats://127.0.0.1:4333",
        "database_url": "postgresql://postgres:pw@/scheduler?host=/data/postgres",
        "jwt_secret": SecretStr("s" * 40),
        "api_host": "127.0.0.1",
        "api_port": 8123,
        "egress_allow": "127.0.0.0/8,::1",
        "log_level": "debug",
    }
    return load_settings(PARENT).replaced(**(decided | changes))


def test_each_service_gets_its_own_process_with_devs_settings() -> None:
    specs = child_specs(PARENT, _dev_settings())
    assert [spec.name for spec in specs] == list(CHILD_ORDER) == ["projector", "api", "ticker", "dispatcher"]
    for spec in specs:
        assert spec.argv[-3:] == ["-m", "scheduler.cli", spec.name]
        # What a child reads back is what dev decided, not what dev's own environment said.
        seen = load_settings(spec.env)
        assert (seen.nats_url, seen.database_url, seen.api_port, seen.egress_allow, seen.log_level) == (
            "nats://127.0.0.1:4333",
            "postgresql://postgres:pw@/scheduler?host=/data/postgres",
            8123,
            "127.0.0.0/8,::1",
            "debug",
        )
        assert seen.jwt_secret is not None and seen.jwt_secret.get_secret_value() == "s" * 40
        assert spec.env["PATH"] == "/usr/bin" and spec.env["HOME"] == "/home/dev"


def test_an_empty_egress_allow_stays_empty() -> None:
    for spec in child_specs(PARENT, _dev_settings(egress_allow="")):
        assert spec.env["SCHEDULER_EGRESS_ALLOW"] == "" and load_settings(spec.env).egress_allow == ""


def test_ops_ports_do_not_collide() -> None:
    ports = {spec.name: load_settings(spec.env).ops_port for spec in child_specs(PARENT, _dev_settings())}
    assert ports == {"api": 9100, "projector": 9101, "ticker": 9102, "dispatcher": 9103}
    for spec in child_specs(PARENT, _dev_settings(ops_port=None)):
        assert "SCHEDULER_OPS_PORT" not in spec.env
    ephemeral = {load_settings(spec.env).ops_port for spec in child_specs(PARENT, _dev_settings(ops_port=0))}
    assert ephemeral == {0}
    with pytest.raises(RuntimeError, match="SCHEDULER_OPS_PORT=65534: dev needs 4 ports"):
        child_specs(PARENT, _dev_settings(ops_port=65534))


def test_a_given_instance_id_names_each_process() -> None:
    specs = child_specs(PARENT, _dev_settings(instance_id="laptop"))
    assert [load_settings(spec.env).instance_id for spec in specs] == [f"laptop-{name}" for name in CHILD_ORDER]
