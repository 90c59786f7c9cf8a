"""The depth of a JSON text, counted on the raw bytes before any decoder runs (services/api/http/request_bodies.py)."""

from __future__ import annotations

import json

import pytest

from services.api.http.request_bodies import MAX_JSON_DEPTH, BodyTooDeepError, check_depth, json_depth

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b'"[[[["', 0),
        (b"{}", 1),
        (b"[[], [[]], {}]", 3),
        (b'{"a": "[[[[{{{{"}', 1),
        (b'{"a\\"[[": ["\\\\", "]]\\"{"]}', 2),
        (b'{"a": {"b": [1, {"c": "}}}}"}]}}', 4),
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, 1000),
    ],
)
def test_depth_counts_brackets_outside_strings_only(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


def test_the_limit_is_inclusive() -> None:
    at_limit = json.dumps(json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)).encode()
    check_depth(at_limit)
    with pytest.raises(BodyTooDeepError, match=f"at most {MAX_JSON_DEPTH} levels"):
        check_depth(b"[" + at_limit + b"]")


def test_a_large_body_full_of_escapes_and_arrays_is_counted_right() -> None:
    # Escaped quotes and backslashes next to brackets, many times over: each string is skipped whole.
    text = json.dumps([['x\\"[' * 20, {"k": [1, 2]}] for _ in range(4000)]).encode()
    assert len(text) > 500_000
    assert json_depth(text) == 4
