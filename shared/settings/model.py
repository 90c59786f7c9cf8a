"""`Settings`: the declared variables with their checks, a repr that never prints a secret, and validated copies."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.delivery.egress import EgressPolicy
from shared.domain.retention import DAY_SECONDS, Retention
from shared.settings.variables import Variables

_URL_FIELDS = ("nats_url", "database_url")
# `scheme://user:password@`, in each URL of a comma-separated list.
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<user>[^/@:,]*)(?::(?P<password>[^/@,]*))?@", re.I)
_NATS_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def redacted_url(url: str) -> str:
    """A URL fit for a log line or a message: its password (or a NATS URL's token) replaced by ***."""

    def redact(match: re.Match[str]) -> str:
        scheme, user, password = match["scheme"], match["user"], match["password"]
        if password is not None:
            return f"{scheme}://{user}:***@"
        if user and scheme.lower() in _NATS_SCHEMES:  # in a NATS URL, a user without a password is a token
            return f"{scheme}://***@"
        return match[0]

    return _USERINFO.sub(redact, url)


def explained(exc: ValidationError) -> str:
    """One message naming each bad variable, never its value (it may be a secret)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        # A field named by the caller (an override, `replaced`) is reported as its variable too.
        where = ".".join(variable(str(part)) if part in Settings.model_fields else str(part) for part in error["loc"])
        problems.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "invalid configuration: " + "; ".join(problems)


class Settings(Variables):
    """Typed, frozen configuration: every field is one environment variable (shared/settings/variables.py, and the
    table of docs/configuration.md). Build it with `load_settings`; derive a changed copy with `replaced`."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        validate_by_name=True,  # overrides and `replaced` name fields; the environment names variables
        validate_by_alias=True,
        extra="forbid",
        hide_input_in_errors=True,  # a validation error must never echo a secret
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings reads the environment it is given (os.environ, or a test's own) and passes it in; files in the
        # secrets directory fill in what it lacks. No .env file: the environment is the configuration.
        return init_settings, file_secret_settings

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise PydanticCustomError("log_level", "not a log level: debug, info, warning, error or critical")
        return value.lower()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problem = self._inconsistency()
        if problem is not None:
            raise PydanticCustomError("settings", problem)
        return self

    def _inconsistency(self) -> str | None:
        if self.delivery_timeout_seconds > self.max_delivery_timeout_seconds:
            return "SCHEDULER_DELIVERY_TIMEOUT_SECONDS must not exceed SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS"
        if self.max_ack_pending < self.dispatcher_concurrency + self.dispatch_lookahead:
            return (
                "SCHEDULER_MAX_ACK_PENDING must be at least SCHEDULER_DISPATCHER_CONCURRENCY"
                " + SCHEDULER_DISPATCH_LOOKAHEAD, or one dispatcher cannot fill its window"
            )
        if DAY_SECONDS % self.execution_partition_seconds:
            return "SCHEDULER_EXECUTION_PARTITION_SECONDS must divide a day (86400) evenly"
        if 0 < self.retention.seconds < self.execution_partition_seconds:
            return (
                "SCHEDULER_EXECUTION_RETENTION_DAYS must be at least one partition"
                " (SCHEDULER_EXECUTION_PARTITION_SECONDS)"
            )
        try:
            EgressPolicy.parse(self.egress_allow)
        except ValueError as exc:
            return f"SCHEDULER_EGRESS_ALLOW: {exc}"
        return None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr(), str() and pretty printers all come here: URLs lose their passwords; a SecretStr hides itself.
        for name, value in super().__repr_args__():
            yield name, redacted_url(value) if name in _URL_FIELDS else value

    def replaced(self, **changes: object) -> Settings:
        """A copy with `changes` (by field name), checked like the original: SettingsError if they are invalid."""
        try:
            return Settings.model_validate({**self.model_dump(exclude_unset=True), **changes})
        except ValidationError as exc:
            raise SettingsError(explained(exc)) from None

    @property
    def egress_policy(self) -> EgressPolicy:
        """Where webhooks may be delivered (see shared/delivery/egress.py)."""
        return EgressPolicy.parse(self.egress_allow)

    @property
    def retention(self) -> Retention:
        """How long execution history is kept (see shared/domain/retention.py)."""
        return Retention.of_days(self.execution_retention_days, self.execution_partition_seconds)

    @property
    def worker_id(self) -> str:
        """Name this process reports in execution records."""
        return self.instance_id or f"{socket.gethostname()}-{os.getpid()}"


def variable(field: str) -> str:
    """The environment variable of a Settings field (KeyError for a name that is no setting)."""
    alias = Settings.model_fields[field].validation_alias
    if not isinstance(alias, str):
        raise TypeError(f"Settings.{field} has no environment variable")
    return alias
