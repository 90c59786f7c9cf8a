"""Settings shared by every service and command: the one reader of configuration.

Each setting is an environment variable (12-factor), read once at start-up by `load_settings` into a frozen, typed
`Settings` that is passed down; no other module reads the environment. A variable may instead come from a file named
like it in SCHEDULER_SECRETS_DIR, as Kubernetes mounts a Secret. Secrets never print: SUPABASE_JWT_SECRET is a
`SecretStr`, and neither repr() nor str() of the settings shows a password inside NATS_URL or DATABASE_URL.
"""

from shared.settings.loading import load_settings
from shared.settings.model import Settings, SettingsError, redacted_url, variable

__all__ = ["Settings", "SettingsError", "load_settings", "redacted_url", "variable"]
