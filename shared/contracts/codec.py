"""JSON encoding of events on the wire: one encoder, one decoder per stream."""

from __future__ import annotations

import msgspec

from shared.contracts.executions import ExecutionEvent
from shared.contracts.job_timing import JobTimingEvent
from shared.contracts.jobs import JobEvent

_encoder = msgspec.json.Encoder()
_job_decoder = msgspec.json.Decoder(JobEvent)
_execution_decoder = msgspec.json.Decoder(ExecutionEvent)
_job_timing_decoder = msgspec.json.Decoder(JobTimingEvent)


def encode(event: msgspec.Struct) -> bytes:
    """Serialize any event."""
    return _encoder.encode(event)


def decode_job_event(data: bytes) -> JobEvent:
    """Parse a JOBS stream message; raises msgspec.ValidationError on a foreign payload."""
    return _job_decoder.decode(data)


def decode_job_timing(data: bytes) -> JobTimingEvent:
    """Parse a JOBS stream message into its timing view (what the ticker indexes); raises msgspec.ValidationError
    on a foreign payload."""
    return _job_timing_decoder.decode(data)


def decode_execution_event(data: bytes) -> ExecutionEvent:
    """Parse an EXECUTIONS stream message; raises msgspec.ValidationError on a foreign payload."""
    return _execution_decoder.decode(data)
