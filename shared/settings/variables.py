"""Every setting: its environment variable (the field's alias), type, bounds, default and meaning.

The table of docs/configuration.md lists the same variables (a unit test keeps the two in step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

Port = Annotated[int, Field(ge=0, le=65535)]


class Variables(BaseSettings):
    """The declared settings, without behaviour (see shared/settings/model.py)."""

    nats_url: str = Field(
        "nats://127.0.0.1:4222",
        validation_alias="NATS_URL",
        description="NATS with JetStream (comma-separated URLs for a cluster); a password or token in it never prints.",
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias="DATABASE_URL",
        description="Postgres for the read models; a password in it never prints.",
    )
    namespace: str = Field(
        "scheduler",
        validation_alias="SCHEDULER_NAMESPACE",
        pattern=r"^[a-z][a-z0-9_]{0,30}$",
        description="Prefix of every stream, subject, consumer, bucket and notification channel: lets several"
        " installations (or test runs) share one NATS and one Postgres without seeing each other.",
    )
    jwt_secret: SecretStr | None = Field(
        None,
        validation_alias="SUPABASE_JWT_SECRET",
        description="HS256 secret that signs bearer tokens; required in jwt mode. Never printed.",
    )
    jwt_audience: str = Field(
        "authenticated", validation_alias="SCHEDULER_JWT_AUDIENCE", description="The `aud` claim a token must carry."
    )
    auth_mode: Literal["jwt", "open"] = Field(
        "jwt",
        validation_alias="SCHEDULER_AUTH_MODE",
        description="`jwt`, or `open` for local use: no tokens, one default account, loopback only.",
    )
    api_host: str = Field(
        "127.0.0.1", validation_alias="SCHEDULER_API_HOST", description="Where `scheduler api` listens."
    )
    api_port: Port = Field(
        8000, validation_alias="SCHEDULER_API_PORT", description="The port `scheduler api` listens on."
    )
    stream_replicas: int = Field(
        1, ge=1, le=5, validation_alias="SCHEDULER_STREAM_REPLICAS", description="JetStream replicas (3 in a cluster)."
    )
    duplicate_window_seconds: float = Field(
        600.0,
        gt=0,
        validation_alias="SCHEDULER_DUPLICATE_WINDOW_SECONDS",
        description="JetStream's duplicate window for repeated publishes; must exceed the longest gap between a"
        " ticker's watermark saves plus its restart time.",
    )
    delivery_timeout_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias="SCHEDULER_DELIVERY_TIMEOUT_SECONDS",
        description="The per-attempt timeout of a job that sets none (status timed_out).",
    )
    callback_retry_base_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        validation_alias="SCHEDULER_CALLBACK_RETRY_BASE_SECONDS",
        description="The wait before a failed callback's first retry; each later one waits twice as long, at most"
        " 30 minutes, and a callback is tried 6 times.",
    )
    max_delivery_timeout_seconds: float = Field(
        120.0,
        gt=0,
        validation_alias="SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS",
        description="The largest timeout_seconds a job may set.",
    )
    ack_wait_seconds: float = Field(
        8.0,
        ge=1,
        validation_alias="SCHEDULER_ACK_WAIT_SECONDS",
        description="The dispatcher consumer's ack wait. A dispatcher keeps the occurrences it holds, and those it is"
        " delivering, alive every third of it; one that dies leaves them to be redelivered to another within it.",
    )
    max_ack_pending: int = Field(
        4096,
        gt=0,
        validation_alias="SCHEDULER_MAX_ACK_PENDING",
        description="Requested executions unacknowledged across all dispatchers: in flight, waiting by priority, and"
        " held until their fire time (a lead's worth of occurrences).",
    )
    dispatcher_concurrency: int = Field(
        64,
        gt=0,
        validation_alias="SCHEDULER_DISPATCHER_CONCURRENCY",
        description="Deliveries in flight per dispatcher.",
    )
    flow_max_waiting: int = Field(
        20000,
        gt=0,
        validation_alias="SCHEDULER_FLOW_MAX_WAITING",
        description="Deliveries waiting for their flow-control key that the dispatchers look at again in turn (the"
        " waiting consumer's max ack pending); more wait in the stream, in order, until room is made.",
    )
    dispatch_lookahead: int = Field(
        256,
        ge=0,
        validation_alias="SCHEDULER_DISPATCH_LOOKAHEAD",
        description="Requested executions a dispatcher holds beyond those in flight, run highest priority first. A"
        " wider window lets priority reorder a deeper backlog; a narrower one spreads a backlog more evenly over"
        " replicas.",
    )
    response_body_limit: int = Field(
        65536, gt=0, validation_alias="SCHEDULER_RESPONSE_BODY_LIMIT", description="Bytes of a response body kept."
    )
    misfire_grace_seconds: float = Field(
        60.0,
        ge=0,
        validation_alias="SCHEDULER_MISFIRE_GRACE_SECONDS",
        description="The grace of fire_all misfire policies that set none: how old a missed occurrence may be and"
        " still fire.",
    )
    read_your_writes_timeout_seconds: float = Field(
        5.0,
        gt=0,
        validation_alias="SCHEDULER_READ_YOUR_WRITES_TIMEOUT_SECONDS",
        description="How long a command waits for the read model to show its write.",
    )
    instance_id: str = Field(
        "",
        validation_alias="SCHEDULER_INSTANCE_ID",
        description="The name this process reports as worker_id and holds leases under; empty: host-pid.",
    )
    egress_allow: str = Field(
        "",
        validation_alias="SCHEDULER_EGRESS_ALLOW",
        description="Webhook targets outside the public internet (loopback, private, link-local, ...) allowed anyway:"
        " comma-separated CIDRs, addresses and host names. Empty: public addresses only (`scheduler dev` allows"
        " loopback unless this is set, even to empty).",
    )
    lease_ttl_seconds: float = Field(
        10.0,
        ge=1,
        le=300,
        validation_alias="SCHEDULER_LEASE_TTL_SECONDS",
        description="How long a dead ticker's partitions (or a dead projector's stream) stay with it before another"
        " takes them.",
    )
    fire_lead_seconds: float = Field(
        0.5,
        ge=0,
        le=10,
        validation_alias="SCHEDULER_FIRE_LEAD_SECONDS",
        description="The ticker publishes each occurrence this long before it is due and the dispatcher waits for"
        " the instant, so occurrences due together leave on time; one paused, deleted or rescheduled inside the"
        " lead is withdrawn (shared/bus/withdrawals.py). 0: publish at the instant.",
    )
    execution_retention_days: float = Field(
        30.0,
        ge=0,
        le=3650,
        validation_alias="SCHEDULER_EXECUTION_RETENTION_DAYS",
        description="How long execution history is kept: the EXECUTIONS stream's age limit and the executions table's"
        " time partitions (dropped whole once older). Counters and statistics still count what is purged. 0: kept"
        " forever. Job events are always kept.",
    )
    execution_partition_seconds: int = Field(
        86_400,
        ge=1,
        le=86_400,
        validation_alias="SCHEDULER_EXECUTION_PARTITION_SECONDS",
        description="The width of one partition of the executions table (by the occurrence's nominal time); must"
        " divide a day. History is purged a partition at a time, so it is kept up to a partition longer than the"
        " retention.",
    )
    started_event_after_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        validation_alias="SCHEDULER_STARTED_EVENT_AFTER_SECONDS",
        description="A webhook attempt's ExecutionStarted is published only when it is still running after this"
        " long; quicker attempts are recorded by their result alone, which carries started_at. 0: always"
        " published, as before event contract 2. Task attempts always publish it.",
    )
    ops_port: Port | None = Field(
        None,
        validation_alias="SCHEDULER_OPS_PORT",
        description="Where each process serves /livez, /readyz and Prometheus /metrics; unset: not served.",
    )
    ops_host: str = Field(
        "0.0.0.0",  # noqa: S104 - probes and scrapes come from outside the pod
        validation_alias="SCHEDULER_OPS_HOST",
        description="The address the ops port listens on.",
    )
    log_level: str = Field(
        "info",
        validation_alias="SCHEDULER_LOG_LEVEL",
        description="debug, info, warning, error or critical (the CLI's --log-level wins).",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        validation_alias="SCHEDULER_LOG_FORMAT",
        description="`text` lines, or `json`: one JSON object per line for log pipelines.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        validation_alias="SCHEDULER_EVENT_LOOP",
        description="The event loop of each long-running process: `uvloop` where it is installed (Linux and macOS;"
        " asyncio's own elsewhere), or `asyncio`.",
    )
    secrets_dir: Path | None = Field(
        None,
        validation_alias="SCHEDULER_SECRETS_DIR",
        description="A directory of files named like these variables (SUPABASE_JWT_SECRET, DATABASE_URL, ...), each"
        " holding its value, as Kubernetes mounts a Secret; a variable set in the environment wins over its file.",
    )
