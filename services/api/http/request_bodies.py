"""Request bodies: their documented limits, and the one place where JSON bodies are read on both API surfaces.

A body is at most MAX_BODY_BYTES (larger is a 413 before it is read in full) and nests objects and arrays at most
MAX_JSON_DEPTH deep. The depth is checked on the raw text before any decoder runs: msgspec and the json module
recurse once per level and overflow the interpreter's stack near 1,000 levels, and a value nested a little less deep
would be accepted here only to overflow later, when an event carrying it is encoded or decoded deeper in a stack.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException, ValidationException

# A job with all its webhooks is at most 512 KiB (core/job_commands.py), so no valid body needs more than this.
MAX_BODY_BYTES = 1024 * 1024
# Deep enough for any real metadata or task arguments (System.Text.Json's default limit), far from the stack's.
MAX_JSON_DEPTH = 64

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Opening brackets become +1 and closing ones -1 (as signed bytes); everything else is dropped.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class BodyTooDeepError(ValueError):
    """A JSON text nests objects and arrays deeper than MAX_JSON_DEPTH."""


def json_depth(text: bytes) -> int:
    """How deep a JSON text nests objects and arrays (brackets inside strings do not count), at C speed and with
    no recursion. On text that is not JSON the answer is meaningless, but the decoder refuses that text anyway."""
    brackets = _STRINGS.sub(b"", text).translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", brackets)), default=0)


def check_depth(text: bytes) -> None:
    if json_depth(text) > MAX_JSON_DEPTH:
        raise BodyTooDeepError(f"nested too deeply: at most {MAX_JSON_DEPTH} levels of objects and arrays")


class JsonBodyRequest(Request[Any, Any, Any]):
    """The NEXUS surface's requests: a JSON body is refused (400) past the depth limit, then decoded as Litestar
    does, which coerces numeric strings to numbers as the NEXUS reference server (pydantic, lax) did."""

    async def json(self) -> Any:
        body = await self.body()
        try:
            check_depth(body)
        except BodyTooDeepError as exc:
            # Litestar turns this into a 400 in the surface's error format, as it does malformed JSON.
            raise SerializationException(f"the JSON body is {exc}") from None
        return await super().json()


class StrictJsonBodyRequest(JsonBodyRequest):
    """The Scheduler-service surface's requests (/api, /webhooks): a field of the wrong JSON type is a 400, never
    coerced ("1" for an integer, "true" or 1 for a boolean, 1.0 for an integer)."""

    async def json(self) -> Any:
        value = await super().json()
        data = self.route_handler.parsed_fn_signature.parameters.get("data")
        if data is None:
            return value
        body = await self.body()
        try:
            msgspec.json.decode(body, type=data.annotation, strict=True)
        except msgspec.ValidationError as strict:
            try:
                msgspec.json.decode(body, type=data.annotation, strict=False)
            except msgspec.ValidationError:
                return value  # wrong in any mode: Litestar reports it as for every other bad body
            raise _coercion_refused(self, strict) from None
        return value


def _coercion_refused(request: Request[Any, Any, Any], error: msgspec.ValidationError) -> ValidationException:
    message, _, where = str(error).rpartition(" - at ")
    key = where.strip("`").removeprefix("$").removeprefix(".") or "data"
    return ValidationException(
        detail=f"Validation failed for {request.method} {request.url.path}",
        extra=[{"message": message or str(error), "key": key, "source": "body"}],
    )
