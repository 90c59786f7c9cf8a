"""Secrets never print, and may come from files as Kubernetes mounts a Secret (SCHEDULER_SECRETS_DIR)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from shared.settings import SettingsError, load_settings, redacted_url

pytestmark = pytest.mark.unit

JWT = "jwt-secret-that-must-never-print"
ENV = {
    "SUPABASE_JWT_SECRET": JWT,
    "NATS_URL": "nats://bus:nats-password@nats-1:4222,nats://bus:nats-password@nats-2:4222",
    "DATABASE_URL": "postgresql://scheduler:pg-password@db:5432/scheduler",
}


def test_neither_repr_str_nor_a_log_line_shows_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(ENV)
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s / %r", settings, settings)
    for text in (repr(settings), str(settings), f"{settings}", caplog.text):
        for secret in (JWT, "nats-password", "pg-password"):
            assert secret not in text, text
    assert "nats://bus:***@nats-1:4222" in repr(settings) and "scheduler:***@db" in repr(settings)
    # The values themselves are intact for the code that connects.
    assert settings.jwt_secret is not None and settings.jwt_secret.get_secret_value() == JWT
    assert settings.database_url == ENV["DATABASE_URL"]


def test_an_error_names_the_variable_but_never_a_value() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(ENV | {"SCHEDULER_MAX_ACK_PENDING": "10"})
    assert "SCHEDULER_MAX_ACK_PENDING" in str(info.value)
    assert all(secret not in str(info.value) for secret in (JWT, "nats-password", "pg-password"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),  # a user name alone is no secret
        ("nats://s3cr3t-token@h:4222", "nats://***@h:4222"),  # but in a NATS URL it is a token
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
    ],
)
def test_urls_lose_their_passwords_and_tokens(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def _kubernetes_secret(root: Path, values: dict[str, str]) -> Path:
    """The layout the kubelet writes: files are symlinks through ..data into a timestamped directory."""
    stamped = root / "..2026_12_02_07_00_00.000000001"
    stamped.mkdir(parents=True)
    for name, value in values.items():
        (stamped / name).write_text(value + "\n")
    (root / "..data").symlink_to(stamped.name)
    for name in values:
        (root / name).symlink_to(Path("..data") / name)
    return root


def test_secrets_come_from_files_and_the_environment_wins(tmp_path: Path) -> None:
    directory = _kubernetes_secret(tmp_path / "secrets", {"SUPABASE_JWT_SECRET": JWT, "NATS_URL": "nats://file:1"})
    settings = load_settings({"SCHEDULER_SECRETS_DIR": str(directory), "NATS_URL": "nats://env:1"})
    assert settings.jwt_secret is not None and settings.jwt_secret.get_secret_value() == JWT  # newline stripped
    assert settings.nats_url == "nats://env:1"
    assert {"jwt_secret", "nats_url"} <= settings.model_fields_set  # set, so `scheduler dev` embeds neither


def test_a_missing_secrets_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SCHEDULER_SECRETS_DIR"):
        load_settings({"SCHEDULER_SECRETS_DIR": str(tmp_path / "absent")})
