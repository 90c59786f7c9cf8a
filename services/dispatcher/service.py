"""The dispatcher service: takes requested executions from a shared durable consumer and delivers them.

Results are published (and stored by JetStream) before the requested message is acked; a crash in between
redelivers the message, and the deterministic message ids keep the history exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.dispatcher.callback_sender import CallbackSender
from services.dispatcher.consumer_config import ensure_dispatcher_consumer
from services.dispatcher.flow_gate import FlowGate
from services.dispatcher.webhook_executor import WebhookExecutor
from shared.attempts.recorder import AttemptRecorder
from shared.attempts.runtime import AttemptRuntime
from shared.attempts.sink import open_jetstream_sink
from shared.bus.connection import connect, disconnect
from shared.bus.executions import hand_over_task
from shared.bus.flow_control import FlowLimiter, flow_bucket
from shared.bus.overlap import Deferred, RunningRuns, running_bucket, under_overlap_policy
from shared.bus.prioritized import PrioritizedConsumer, Request, Slots
from shared.bus.signing_secrets import SigningSecretStore, signing_bucket
from shared.bus.streams import ensure_streams
from shared.bus.withdrawals import WITHDRAWN_REASON, Withdrawals, withdrawn_bucket
from shared.contracts.callbacks import CallbackRequested
from shared.contracts.executions import ExecutionWaiting
from shared.contracts.subjects import Names
from shared.delivery.egress import GuardedResolver
from shared.delivery.http_client import HttpClient
from shared.observability import tracing
from shared.settings import Settings

# An occurrence of a job with no enabled webhook: created before its webhook, or its receiver answered 410.
NO_TARGET_REASON = "nothing to deliver to: the job has no enabled webhook (add one, or enable it again)"
# Callbacks to send: fetched beyond those being sent, and sent at once, per process (their own slots, so a slow
# callback receiver never holds up deliveries).
CALLBACK_LOOKAHEAD = 16


class Dispatcher:
    """A connected dispatcher (see `open_dispatcher`): webhooks run on the attempt runtime, tasks go to workers,
    callbacks are sent."""

    def __init__(
        self,
        settings: Settings,
        js: JetStreamContext,
        runtime: AttemptRuntime,
        webhooks: WebhookExecutor,
        runs: RunningRuns,
        withdrawals: Withdrawals,
        callbacks: CallbackSender,
        flow: FlowGate,
    ) -> None:
        self._settings = settings
        self._names = Names(settings.namespace)
        self._js = js
        self._runtime = runtime
        self._webhooks = webhooks
        self._runs = runs
        self._withdrawals = withdrawals
        self._callbacks = callbacks
        self._flow = flow

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and deliver (and send callbacks) until `stop` is set; what is in flight finishes before it returns."""
        names, settings = self._names, self._settings
        subs = [
            await self._js.pull_subscribe_bind(names.dispatcher_consumer, stream=names.executions_stream),
            await self._js.pull_subscribe_bind(names.callback_consumer, stream=names.executions_stream),
            await self._js.pull_subscribe_bind(names.waiting_consumer, stream=names.executions_stream),
        ]
        deliveries = PrioritizedConsumer(
            subs[0],
            self._handle,
            slots=Slots(settings.dispatcher_concurrency),
            lookahead=settings.dispatch_lookahead,
            ack_wait_seconds=settings.ack_wait_seconds,
            max_hold_seconds=settings.fire_lead_seconds,
        )
        callbacks = PrioritizedConsumer(
            subs[1],
            self._handle,
            slots=Slots(max(1, settings.dispatcher_concurrency // 4)),
            lookahead=CALLBACK_LOOKAHEAD,
            ack_wait_seconds=settings.ack_wait_seconds,
        )
        # Deliveries that wait for their flow-control key (and wait here a moment for a place) have slots of their
        # own: however many wait, they never take one from the deliveries of other destinations.
        waiting = PrioritizedConsumer(
            subs[2], self._handle, slots=Slots(settings.dispatcher_concurrency), lookahead=settings.dispatch_lookahead,
            ack_wait_seconds=settings.ack_wait_seconds,
        )  # fmt: skip
        try:
            # One consumer failing ends the others (handing back what they hold) and the dispatcher with them.
            async with asyncio.TaskGroup() as group:
                for consumer in (deliveries, callbacks, waiting):
                    group.create_task(consumer.run(stop))
        finally:
            for sub in subs:
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()

    async def _handle(self, request: Request, msg: Msg) -> None:
        with _dispatch_span(request, msg):
            await self._dispatch(request, msg)

    async def _dispatch(self, request: Request, msg: Msg) -> None:
        if isinstance(request, CallbackRequested):
            await self._callbacks.send(request)
            return
        waited = False
        if isinstance(request, ExecutionWaiting):
            request, waited = request.request, True
        if request.execution_id in self._withdrawals:
            await self._runtime.skip(request, WITHDRAWN_REASON)
        elif request.task is not None:
            # Workers run tasks and record them; the dispatcher only queues them in the TASKS stream.
            await hand_over_task(self._js, self._names, request)
        elif request.webhook is None:
            # Nothing was sent, so nothing failed: the occurrence is recorded, saying why, and not retried.
            await self._runtime.skip(request, NO_TARGET_REASON)
        else:
            # Flow control inside the overlap policy: an occurrence it skips, or holds back behind a run in flight,
            # takes no place and uses none of the key's rate.
            run = functools.partial(self._runtime.run, request, self._webhooks)
            await under_overlap_policy(
                self._runs,
                request,
                functools.partial(self._flow.run, request, msg, waited, run),
                functools.partial(self._runtime.skip_by_overlap, request),
                refresh_every=self._settings.ack_wait_seconds / 3,
            )


def _dispatch_span(request: Request, msg: Msg) -> AbstractContextManager[object]:
    """The span of one request's handling, continuing the trace its message carries (nothing while tracing is off,
    and nothing built for it). A delivery handed back to wait (overlap, flow control) is no error."""
    if not tracing.enabled():
        return tracing.NO_SPAN
    what = {"execution.id": str(request.execution_id), "job.id": str(request.job_id)}
    name = f"dispatch {type(request).__name__}"
    return tracing.span(name, tracing.CONSUMER, parent=msg.headers, attributes=what, expected=(Deferred,))


@asynccontextmanager
async def open_dispatcher(settings: Settings) -> AsyncIterator[Dispatcher]:
    """A dispatcher connected to NATS, its streams, consumer and buckets checked; everything is closed on exit."""
    async with AsyncExitStack() as stack:
        nc = await connect(settings.nats_url, "dispatcher")
        stack.push_async_callback(disconnect, nc)
        js = nc.jetstream()
        await ensure_streams(js, settings)
        await ensure_dispatcher_consumer(js, settings)
        recorder = AttemptRecorder(await open_jetstream_sink(js, settings))
        secrets = SigningSecretStore(await signing_bucket(js, settings))
        runs = RunningRuns(await running_bucket(js, settings))
        withdrawals = Withdrawals(await withdrawn_bucket(js, settings))
        await withdrawals.start()
        stack.push_async_callback(withdrawals.stop)
        # The resolver lets through only addresses the egress policy allows: the address checked is the one
        # connected to. No proxy: one would connect on our behalf.
        client = HttpClient(GuardedResolver(settings.egress_policy))
        stack.push_async_callback(client.close)
        runtime = AttemptRuntime(
            recorder, settings.worker_id, started_after_seconds=settings.started_event_after_seconds
        )
        webhooks = WebhookExecutor(client, secrets, settings)
        callbacks = CallbackSender(client, secrets, recorder, settings)
        limiter = FlowLimiter(await flow_bucket(js, settings), hold_for=settings.ack_wait_seconds)
        flow = FlowGate(limiter, recorder, refresh_every=settings.ack_wait_seconds / 3)
        yield Dispatcher(settings, js, runtime, webhooks, runs, withdrawals, callbacks, flow)
