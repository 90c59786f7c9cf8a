"""Settings come from the environment, typed and checked once."""

from __future__ import annotations

import pytest

from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_environment_is_parsed_and_typed() -> None:
    s = load_settings({"NATS_URL": "nats://h:1", "SCHEDULER_API_PORT": "9001", "SCHEDULER_AUTH_MODE": "open"})
    assert (s.nats_url, s.api_port, s.auth_mode) == ("nats://h:1", 9001, "open")


def test_overrides_win_over_environment() -> None:
    assert load_settings({"SCHEDULER_API_PORT": "9001"}, api_port=9002).api_port == 9002


@pytest.mark.parametrize(
    "env",
    [
        {"SCHEDULER_API_PORT": "not-a-port"},
        {"SCHEDULER_AUTH_MODE": "none"},
        {"SCHEDULER_NAMESPACE": "Bad.Name"},
        {"SCHEDULER_DELIVERY_TIMEOUT_SECONDS": "90", "SCHEDULER_ACK_WAIT_SECONDS": "60"},
        {"SCHEDULER_MAX_ACK_PENDING": "100"},
        {"SCHEDULER_DISPATCH_LOOKAHEAD": "-1"},
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert any(name in str(info.value) for name in env)
