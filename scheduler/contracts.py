"""The event contracts, for services that subscribe to the scheduler's streams: what a subscriber imports.

    from scheduler.contracts import ExecutionFailed, Names, decode_execution_event

    names = Names("scheduler")  # the installation's SCHEDULER_NAMESPACE
    # subscribe to names.executions_filter, then for each message:
    event = decode_execution_event(msg.data)
    if isinstance(event, ExecutionFailed): ...

- Job events (JOBS stream, one subject per job): `JobCreated`, `JobUpdated`, `JobPaused`, `JobResumed`,
  `JobDeleted`, `WebhookAdded`, `WebhookUpdated`, `WebhookRemoved`, `WebhookDisabled`; `JobEvent` is their union and
  each carries the job's whole state after it (`JobState`, with `WebhookSpec`, `TaskSpec`, `RetryPolicy`,
  `MisfirePolicy` and a `Schedule`).
- Execution events (EXECUTIONS stream): `ExecutionRequested`, `ExecutionStarted`, `ExecutionSucceeded`,
  `ExecutionFailed`, `ExecutionRetryScheduled`, `ExecutionDeadLettered`, `WebhookDisabledByReceiver`,
  `ExecutionMissed`, `ExecutionSkipped`, `ExecutionWaiting` (a delivery waiting for its flow-control key), and a
  callback's `CallbackRequested` (its `CallbackBody` is what the callback's receiver gets), `CallbackDelivered`,
  `CallbackFailed`, and a backfill's `BackfillRequested`, `BackfillProgressed` (with its `BackfillCounts`),
  `BackfillCompleted`, `BackfillCancelled`; `ExecutionEvent` is their union. A job's `FlowControl` is part of its
  state.
- `decode_job_event`, `decode_execution_event`: a message's bytes to its event (msgspec.ValidationError if foreign).
- `Names`: stream and subject names under a namespace; `partition_of`: a job's partition in its JOBS subject.

(`scheduler.events` is the `scheduler events tail` command, not these definitions; they live in shared/contracts/.)
"""

from shared.contracts.backfills import (
    BackfillCancelled,
    BackfillCompleted,
    BackfillCounts,
    BackfillProgressed,
    BackfillRequested,
)
from shared.contracts.callbacks import CallbackBody, CallbackDelivered, CallbackFailed, CallbackRequested
from shared.contracts.codec import decode_execution_event, decode_job_event
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionEvent,
    ExecutionFailed,
    ExecutionMissed,
    ExecutionRequested,
    ExecutionRetryScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionWaiting,
    WebhookDisabledByReceiver,
)
from shared.contracts.jobs import (
    FlowControl,
    JobCreated,
    JobDeleted,
    JobEvent,
    JobPaused,
    JobResumed,
    JobState,
    JobUpdated,
    MisfirePolicy,
    RetryPolicy,
    TaskSpec,
    WebhookAdded,
    WebhookDisabled,
    WebhookRemoved,
    WebhookSpec,
    WebhookUpdated,
)
from shared.contracts.schedules import (
    CalendarRule,
    CalendarSchedule,
    CronSchedule,
    DateSchedule,
    IntervalSchedule,
    Schedule,
)
from shared.contracts.subjects import Names, partition_of

__all__ = [
    "BackfillCancelled",
    "BackfillCompleted",
    "BackfillCounts",
    "BackfillProgressed",
    "BackfillRequested",
    "CalendarRule",
    "CalendarSchedule",
    "CallbackBody",
    "CallbackDelivered",
    "CallbackFailed",
    "CallbackRequested",
    "CronSchedule",
    "DateSchedule",
    "ExecutionDeadLettered",
    "ExecutionEvent",
    "ExecutionFailed",
    "ExecutionMissed",
    "ExecutionRequested",
    "ExecutionRetryScheduled",
    "ExecutionSkipped",
    "ExecutionStarted",
    "ExecutionSucceeded",
    "ExecutionWaiting",
    "FlowControl",
    "IntervalSchedule",
    "JobCreated",
    "JobDeleted",
    "JobEvent",
    "JobPaused",
    "JobResumed",
    "JobState",
    "JobUpdated",
    "MisfirePolicy",
    "Names",
    "RetryPolicy",
    "Schedule",
    "TaskSpec",
    "WebhookAdded",
    "WebhookDisabled",
    "WebhookDisabledByReceiver",
    "WebhookRemoved",
    "WebhookSpec",
    "WebhookUpdated",
    "decode_execution_event",
    "decode_job_event",
    "partition_of",
]
