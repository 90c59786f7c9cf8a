"""JSON encoding of events on the wire: one encoder, one decoder per stream."""

from __future__ import annotations

import msgspec

from shared.contracts.executions import ExecutionEvent
from shared.contracts.jobs import JobEvent

_encoder = msgspec.json.Encoder()
_job_decoder = msgspec.json.Decoder(JobEvent)
_execution_decoder = msgspec.json.Decoder(ExecutionEvent)


def encode(event: msgspec.Struct) -> bytes:
    """Serialize any event."""
    return _encoder.encode(event)


def decode_job_event(data: bytes) -> JobEvent:
    """Parse a JOBS stream message; raises msgspec.ValidationError on a foreign payload."""
    return _job_decoder.decode(data)


def decode_execution_event(data: bytes) -> ExecutionEvent:
    """Parse an EXECUTIONS stream message; raises msgspec.ValidationError on a foreign payload."""
    return _execution_decoder.decode(data)
