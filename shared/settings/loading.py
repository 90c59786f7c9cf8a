"""`load_settings`: the environment (and the secrets directory) read once into `Settings`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource

from shared.settings.model import Settings, SettingsError, explained, variable


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ, or a test's own). An empty variable is
    unset, as if absent, except where the setting's default is itself empty: there it is an explicit choice (an
    empty SCHEDULER_EGRESS_ALLOW keeps `scheduler dev` to public addresses)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        may_be_empty = {variable(name) for name, field in Settings.model_fields.items() if field.default == ""}
        return {name: value for name, value in self._environ.items() if value or name in may_be_empty}


def _secrets_dir(values: Mapping[str, Any]) -> Path | None:
    name = variable("secrets_dir")
    given = values.get(name)
    if given is None:
        return None
    directory = Path(str(given))
    if not directory.is_dir():
        raise SettingsError(f"invalid configuration: {name}: {directory} is not a directory")
    return directory


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from the environment (os.environ unless `environ` is given), then from files in
    SCHEDULER_SECRETS_DIR for variables the environment lacks; keyword overrides by field name win over both, and an
    override of None means "not given" (the CLI passes its options so). SettingsError names a bad variable."""
    values: dict[str, Any] = _Environment(os.environ if environ is None else environ)()
    values |= {variable(name): value for name, value in overrides.items() if value is not None}
    source_options: dict[str, Any] = {"_secrets_dir": _secrets_dir(values)}  # pydantic-settings' init option
    try:
        return Settings(**source_options, **values)
    except ValidationError as exc:
        raise SettingsError(explained(exc)) from None
