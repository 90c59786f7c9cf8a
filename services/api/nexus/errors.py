"""The NEXUS surface's error format, as its document shows it: {"detail": "..."}, and a validation error as 422 with
{"detail": [{"loc", "msg", "type"}]}. What each error is comes from the one table (services/api/core/errors.py)."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from services.api.core.api_errors import JobNotFoundError, ValidationFailedError
from services.api.core.errors import ErrorAnswer, sentence
from services.api.core.job_input import input_field

_DETAILS: dict[type[Exception], str] = {JobNotFoundError: "Job not found"}
_INTERNAL = "Internal server error"
_MISSING = re.compile(r"missing required field `([^`]+)`")


def _nexus(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(content={"detail": detail}, status_code=status, headers=headers)


def problem(source: str, key: str | None, message: str) -> dict[str, Any]:
    """One Litestar problem as a FastAPI-style item: key 'tags[0]' becomes loc ['body', 'tags', 0]."""
    loc: list[str | int] = [source]
    for part in re.findall(r"[^.\[\]$]+", key or ""):
        if part != "data":  # Litestar's name for the whole body
            loc.append(int(part) if part.isdigit() else part)
    if missing := _MISSING.search(message):
        return {"loc": [*loc, missing[1]], "msg": "field required", "type": "value_error.missing"}
    return {"loc": loc, "msg": message, "type": "value_error"}


def nexus_field(field: str | None, schedule_kind: str | None) -> str | None:
    """What the document calls a field an error names: the job input's name (the document's bodies are read into
    it), and the fields this surface names itself as they are."""
    return input_field(field, schedule_kind)


class NexusErrors:
    """Renders the table's answers in the NEXUS shapes."""

    def answer(self, request: Request[Any, Any, Any], exc: Exception, answer: ErrorAnswer) -> Response[Any]:
        if isinstance(exc, ValidationFailedError):
            field = nexus_field(exc.field, exc.schedule_kind)
            loc = [exc.location, field] if field else [exc.location]
            if exc.missing:
                return _nexus(422, [{"loc": loc, "msg": "field required", "type": "value_error.missing"}])
            return _nexus(422, [{"loc": loc, "msg": exc.detail, "type": "value_error"}])
        if answer.kind == "internal":
            return _nexus(answer.status, _INTERNAL)
        if answer.kind == "unavailable":
            return _nexus(answer.status, sentence(answer.detail))
        headers = {"WWW-Authenticate": "Bearer"} if answer.status == 401 else None
        return _nexus(answer.status, _DETAILS.get(type(exc), answer.detail), headers)

    def validation(self, request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
        problems = exc.extra if isinstance(exc.extra, list) else []
        items = [
            problem(p.get("source") or "body", p.get("key"), str(p.get("message")))
            for p in problems
            if isinstance(p, dict)
        ]
        return _nexus(422, items or [{"loc": ["body"], "msg": exc.detail or "invalid request", "type": "value_error"}])

    def http(self, request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        if exc.status_code >= 500:
            return _nexus(exc.status_code, _INTERNAL)
        return _nexus(exc.status_code, exc.detail, exc.headers)
