"""Settings come from the environment, typed and checked once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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
        {"SCHEDULER_DELIVERY_TIMEOUT_SECONDS": "130"},
        {"SCHEDULER_ACK_WAIT_SECONDS": "0.5"},
        {"SCHEDULER_MAX_ACK_PENDING": "100"},
        {"SCHEDULER_DISPATCH_LOOKAHEAD": "-1"},
        {"SCHEDULER_EXECUTION_PARTITION_SECONDS": "7"},
        {"SCHEDULER_EXECUTION_RETENTION_DAYS": "-1"},
        {"SCHEDULER_EXECUTION_RETENTION_DAYS": "0.00001"},
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert any(name in str(info.value) for name in env)


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(ValidationError):
        settings.api_port = 1  # type: ignore[misc]


def test_a_changed_copy_is_checked_like_the_original() -> None:
    settings = load_settings({"SCHEDULER_API_PORT": "9001"})
    changed = settings.replaced(api_port=9002, jwt_secret="s" * 32)
    assert (settings.api_port, changed.api_port) == (9001, 9002)
    assert changed.jwt_secret is not None and changed.jwt_secret.get_secret_value() == "s" * 32
    with pytest.raises(SettingsError, match="SCHEDULER_MAX_ACK_PENDING"):
        settings.replaced(max_ack_pending=10)


def test_an_empty_variable_is_unset_unless_empty_is_a_value() -> None:
    settings = load_settings({"SCHEDULER_API_PORT": "", "SCHEDULER_EGRESS_ALLOW": ""})
    assert settings.api_port == 8000 and "api_port" not in settings.model_fields_set
    # `scheduler dev` allows loopback unless SCHEDULER_EGRESS_ALLOW is set: set to empty, it means public only.
    assert settings.egress_allow == "" and "egress_allow" in settings.model_fields_set


def test_log_settings_are_read_and_checked() -> None:
    settings = load_settings({"SCHEDULER_LOG_LEVEL": "WARNING", "SCHEDULER_LOG_FORMAT": "json"})
    assert (settings.log_level, settings.log_format) == ("warning", "json")
    assert load_settings({"SCHEDULER_LOG_LEVEL": "WARNING"}, log_level="debug").log_level == "debug"
    for env in ({"SCHEDULER_LOG_LEVEL": "loud"}, {"SCHEDULER_LOG_FORMAT": "xml"}):
        with pytest.raises(SettingsError, match=next(iter(env))):
            load_settings(env)
