"""One contract suite for both attempt sinks, in memory and JetStream: what the recorder relies on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from shared.attempts.memory_sink import InMemoryAttemptSink
from shared.attempts.sink import AttemptSink, JetStreamSink, open_jetstream_sink
from shared.bus.streams import ensure_streams, timers_bucket
from shared.contracts.executions import ExecutionRequested, ExecutionSkipped, envelope_of, occurrence_requests
from shared.contracts.subjects import Names
from shared.contracts.timers import RetryTimer
from shared.settings import Settings
from tests.factories import NOW, job_state

pytestmark = pytest.mark.integration


class Bench(Protocol):
    sink: AttemptSink

    async def published(self) -> list[tuple[str, str]]:
        """(subject kind, message id) of each stored event, in order."""
        ...

    async def timer(self, request: ExecutionRequested) -> RetryTimer | None: ...


@dataclass
class MemoryBench:
    sink: InMemoryAttemptSink

    async def published(self) -> list[tuple[str, str]]:
        return [(w.what, w.key) for w in self.sink.written if w.what not in ("timer", "disable_webhook")]

    async def timer(self, request: ExecutionRequested) -> RetryTimer | None:
        found = [w.value for w in self.sink.written if (w.what, w.key) == ("timer", str(request.execution_id))]
        return found[0] if found and isinstance(found[0], RetryTimer) else None


@dataclass
class JetStreamBench:
    sink: JetStreamSink
    js: JetStreamContext
    settings: Settings

    async def published(self) -> list[tuple[str, str]]:
        names = Names(self.settings.namespace)
        info = await self.js.stream_info(names.executions_stream)
        stored: list[tuple[str, str]] = []
        if not info.state.messages:
            return stored
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.js.get_msg(names.executions_stream, seq)
            assert msg.subject is not None and msg.headers is not None
            stored.append((msg.subject.split(".")[2], msg.headers["Nats-Msg-Id"]))
        return stored

    async def timer(self, request: ExecutionRequested) -> RetryTimer | None:
        kv = await timers_bucket(self.js, self.settings)
        try:
            entry = await kv.get(Names(self.settings.namespace).timer_key(request.job_id, request.execution_id))
        except KeyNotFoundError:
            return None
        return msgspec.json.decode(entry.value or b"", type=RetryTimer)


@pytest.fixture(params=["memory", "nats"])
async def bench(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Bench]:
    if request.param == "memory":
        yield MemoryBench(InMemoryAttemptSink())
        return
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    await ensure_streams(js, settings)
    yield JetStreamBench(await open_jetstream_sink(js, settings), js, settings)
    await nc.close()


def a_request() -> ExecutionRequested:
    return occurrence_requests(job_state(), job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)[0]


def skipped(request: ExecutionRequested, reason: str) -> ExecutionSkipped:
    return ExecutionSkipped(**envelope_of(request), occurred_at=NOW, reason=reason)


async def test_a_repeated_message_id_is_stored_once(bench: Bench) -> None:
    first, second = a_request(), a_request()
    await bench.sink.publish("skipped", skipped(first, "a"), "one")
    await bench.sink.publish("skipped", skipped(first, "a again"), "one")
    await bench.sink.publish("skipped", skipped(second, "b"), "two")
    assert await bench.published() == [("skipped", "one"), ("skipped", "two")]


async def test_an_event_under_a_kind_not_its_own_is_refused(bench: Bench) -> None:
    with pytest.raises(ValueError, match="SUBJECT_KINDS"):
        await bench.sink.publish("succeeded", skipped(a_request(), "x"), "wrong")
    assert await bench.published() == []


async def test_a_timer_written_twice_holds_the_latest_due_time(bench: Bench) -> None:
    following = a_request().next_attempt(NOW)
    assert await bench.timer(following) is None
    await bench.sink.put_timer(RetryTimer(due_at=NOW, request=following))
    later = RetryTimer(due_at=NOW + timedelta(seconds=5), request=following)
    await bench.sink.put_timer(later)
    assert await bench.timer(following) == later
