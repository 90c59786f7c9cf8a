"""Prometheus metrics of the services (process-wide registry), served by each process's ops endpoint.

Names start with `scheduler_`; label values are bounded sets (outcomes, status codes, stream names, policies).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

FIRE_LATENESS = Histogram(
    "scheduler_fire_lateness_seconds",
    "How long after its nominal time (plus jitter) an occurrence was published by the ticker",
    buckets=LATENESS_BUCKETS,
)
OCCURRENCES_PUBLISHED = Counter("scheduler_occurrences_published_total", "Executions requested by the ticker")
OCCURRENCES_MISSED = Counter(
    "scheduler_occurrences_missed_total", "Occurrences recorded as missed, by misfire policy", ["policy"]
)
RETRIES_FIRED = Counter("scheduler_retries_fired_total", "Retry timers the ticker published")
PARTITIONS_HELD = Gauge("scheduler_ticker_partitions_held", "Job partitions this ticker fires")
PARTITIONS_INDEXED = Gauge(
    "scheduler_ticker_partitions_indexed", "Partitions held whose jobs this ticker has read and indexed"
)
JOBS_INDEXED = Gauge("scheduler_ticker_jobs_indexed", "Jobs in this ticker's index (those of the partitions it holds)")
PARTITION_READS = Counter(
    "scheduler_ticker_partition_reads_total",
    "Partitions read when taken: from a snapshot and the events after it, or from the stream",
    ["source"],
)
DELIVERIES = Counter(
    "scheduler_deliveries_total", "Webhook deliveries and task runs by outcome and HTTP status", ["outcome", "code"]
)
DELIVERY_SECONDS = Histogram(
    "scheduler_delivery_duration_seconds", "Time from the start of an attempt to its result", buckets=LATENESS_BUCKETS
)
RETRIES_SCHEDULED = Counter("scheduler_retries_scheduled_total", "Failed attempts given another attempt")
DEAD_LETTERS = Counter("scheduler_dead_letters_total", "Occurrences dead-lettered after their last attempt")
BACKFILL_REQUESTS = Counter(
    "scheduler_backfill_requests_total",
    "Executions backfills requested (targets of past occurrences that had not succeeded)",
)
CHAIN_RUNS = Counter("scheduler_chain_runs_total", "Occurrences of chained jobs fired by an upstream occurrence's end")
FLOW_WAITS = Counter(
    "scheduler_flow_waits_total",
    "Looks at a flow-control key that found it at a limit (parallelism or rate): the delivery waited",
    ["reason"],
)
CALLBACKS = Counter(
    "scheduler_callbacks_total",
    "Tries of result and failure callbacks by outcome (delivered, retrying, failed: given up)",
    ["kind", "outcome"],
)
# Every label set of these counters exists from the start (at 0), so a rule's increase() sees their first step.
for _kind in ("result", "failure"):
    for _outcome in ("delivered", "retrying", "failed"):
        CALLBACKS.labels(_kind, _outcome)
for _reason in ("parallelism", "rate"):
    FLOW_WAITS.labels(_reason)
SKIPPED_BY_OVERLAP = Counter("scheduler_skipped_by_overlap_total", "Executions the overlap policy did not run")
CONSUMER_PENDING = Gauge(
    "scheduler_consumer_pending", "Messages of a durable consumer not yet delivered (its lag)", ["consumer"]
)
PROJECTED_EVENTS = Counter("scheduler_projected_events_total", "Events applied to the read models", ["stream"])
PROJECTED_BATCHES = Counter(
    "scheduler_projected_batches_total", "Transactions the projector applied events in", ["stream"]
)
PROJECTION_LAG = Gauge("scheduler_projection_lag_events", "Events in the stream not yet applied", ["stream"])
PROJECTOR_LEASES_HELD = Gauge("scheduler_projector_streams_held", "Streams this projector is the writer of")
