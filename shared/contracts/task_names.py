"""Task names become NATS subject tokens: dot-separated parts of letters, digits, '_' and '-'. Part of the wire
format, so the job domain (which refuses a bad name) and the worker library (which registers names) share it."""

from __future__ import annotations

import re

_TASK_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
MAX_LENGTH = 255


def check_task_name(name: str) -> str:
    """The name, if it can be a task's subject token; ValueError otherwise."""
    if len(name) > MAX_LENGTH or not _TASK_NAME.match(name):
        raise ValueError(f"task name {name!r} must be dot-separated parts of letters, digits, '_' or '-'")
    return name
