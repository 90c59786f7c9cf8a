"""Settings shared by every service, parsed once from environment variables (12-factor)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from shared.delivery.egress import EgressPolicy

_ENV_NAMES = {
    "nats_url": "NATS_URL",
    "database_url": "DATABASE_URL",
    "namespace": "SCHEDULER_NAMESPACE",
    "jwt_secret": "SUPABASE_JWT_SECRET",
    "jwt_audience": "SCHEDULER_JWT_AUDIENCE",
    "auth_mode": "SCHEDULER_AUTH_MODE",
    "api_host": "SCHEDULER_API_HOST",
    "api_port": "SCHEDULER_API_PORT",
    "stream_replicas": "SCHEDULER_STREAM_REPLICAS",
    "duplicate_window_seconds": "SCHEDULER_DUPLICATE_WINDOW_SECONDS",
    "delivery_timeout_seconds": "SCHEDULER_DELIVERY_TIMEOUT_SECONDS",
    "max_delivery_timeout_seconds": "SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS",
    "ack_wait_seconds": "SCHEDULER_ACK_WAIT_SECONDS",
    "max_ack_pending": "SCHEDULER_MAX_ACK_PENDING",
    "dispatcher_concurrency": "SCHEDULER_DISPATCHER_CONCURRENCY",
    "dispatch_lookahead": "SCHEDULER_DISPATCH_LOOKAHEAD",
    "response_body_limit": "SCHEDULER_RESPONSE_BODY_LIMIT",
    "misfire_grace_seconds": "SCHEDULER_MISFIRE_GRACE_SECONDS",
    "read_your_writes_timeout_seconds": "SCHEDULER_READ_YOUR_WRITES_TIMEOUT_SECONDS",
    "instance_id": "SCHEDULER_INSTANCE_ID",
    "egress_allow": "SCHEDULER_EGRESS_ALLOW",
    "lease_ttl_seconds": "SCHEDULER_LEASE_TTL_SECONDS",
    "fire_lead_seconds": "SCHEDULER_FIRE_LEAD_SECONDS",
    "ops_port": "SCHEDULER_OPS_PORT",
    "ops_host": "SCHEDULER_OPS_HOST",
}

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename=_ENV_NAMES):
    """Typed configuration. Every field maps to one environment variable (see README, Configuration)."""

    nats_url: str = "nats://127.0.0.1:4222"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # Prefix of every stream, subject, consumer, bucket and notification channel: lets several
    # installations (or test runs) share one NATS and one Postgres without seeing each other.
    namespace: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,30}$")] = "scheduler"
    jwt_secret: str | None = None
    jwt_audience: str = "authenticated"
    auth_mode: Literal["jwt", "open"] = "jwt"
    api_host: str = "127.0.0.1"
    api_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    stream_replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    # Must exceed the longest gap between a ticker's watermark saves plus its restart time.
    duplicate_window_seconds: PositiveFloat = 600.0
    # The per-attempt timeout of a job that sets none, and the largest a job may set.
    delivery_timeout_seconds: PositiveFloat = 30.0
    max_delivery_timeout_seconds: PositiveFloat = 120.0
    # Checked against max_delivery_timeout_seconds: a message must never be redelivered while in flight.
    ack_wait_seconds: PositiveFloat = 150.0
    # Unacknowledged requested executions across dispatchers: those in flight, waiting by priority, and held until
    # their fire time (a lead's worth of occurrences).
    max_ack_pending: PositiveInt = 4096
    dispatcher_concurrency: PositiveInt = 64
    # Requested executions a dispatcher holds beyond those in flight, run highest priority first. A wider window
    # lets priority reorder a deeper backlog; a narrower one spreads a backlog more evenly over replicas.
    dispatch_lookahead: Annotated[int, msgspec.Meta(ge=0)] = 256
    response_body_limit: PositiveInt = 65536
    misfire_grace_seconds: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    read_your_writes_timeout_seconds: PositiveFloat = 5.0
    instance_id: str = ""
    # Webhook targets outside the public internet (loopback, private, link-local, ...) that are allowed anyway:
    # comma-separated CIDRs, addresses and host names. Empty: public addresses only.
    egress_allow: str = ""
    # How long a dead ticker's partitions (or a dead projector's stream) stay with it before another takes them.
    lease_ttl_seconds: Annotated[float, msgspec.Meta(ge=1, le=300)] = 10.0
    # The ticker publishes each occurrence this long before it is due and the dispatcher waits for the instant, so
    # occurrences due together leave on time rather than queueing behind their publication; a job paused, deleted
    # or rescheduled inside the lead is withdrawn (see shared/bus/withdrawals.py). 0: publish at the instant.
    fire_lead_seconds: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.5
    # Where each process serves /livez, /readyz and /metrics (Prometheus); no port: not served.
    ops_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    ops_host: str = "0.0.0.0"  # noqa: S104 - probes and scrapes come from outside the pod

    def __post_init__(self) -> None:
        if self.delivery_timeout_seconds > self.max_delivery_timeout_seconds:
            raise SettingsError(
                "SCHEDULER_DELIVERY_TIMEOUT_SECONDS must not exceed SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS"
            )
        if self.ack_wait_seconds <= self.max_delivery_timeout_seconds:
            raise SettingsError(
                "SCHEDULER_ACK_WAIT_SECONDS must be greater than SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS"
            )
        if self.max_ack_pending < self.dispatcher_concurrency + self.dispatch_lookahead:
            raise SettingsError(
                "SCHEDULER_MAX_ACK_PENDING must be at least SCHEDULER_DISPATCHER_CONCURRENCY"
                " + SCHEDULER_DISPATCH_LOOKAHEAD, or one dispatcher cannot fill its window"
            )

        try:
            EgressPolicy.parse(self.egress_allow)
        except ValueError as exc:
            raise SettingsError(f"SCHEDULER_EGRESS_ALLOW: {exc}") from None

    @property
    def egress_policy(self) -> EgressPolicy:
        """Where webhooks may be delivered (see shared/delivery/egress.py)."""
        return EgressPolicy.parse(self.egress_allow)

    @property
    def worker_id(self) -> str:
        """Name this process reports in execution records."""
        return self.instance_id or f"{socket.gethostname()}-{os.getpid()}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from the environment; explicit keyword overrides win (used by the CLI and tests)."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {name: env[name] for name in _ENV_NAMES.values() if env.get(name)}
    for field, value in overrides.items():
        if value is not None:
            raw[_ENV_NAMES[field]] = value
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from exc
