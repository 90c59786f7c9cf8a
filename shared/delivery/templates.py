"""Webhook body templates: logic-less Mustache (pystache), rendered per attempt.

Variables: `job_id`, `job_name`, `account_id`, `webhook_id`, `execution_id`, `occurrence_id`, `nominal_time`
(ISO 8601, UTC), `attempt`. `{{name}}` is escaped for the body's content type, so a value can never break out of
its place: inside a JSON string for JSON, percent-encoded for form bodies, entity-escaped for XML and HTML, as is
for anything else. `{{{name}}}` inserts a value as it is. An unknown variable or partial is an error, so a template
that would not render is refused when the webhook is saved, not when it fires.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote_plus
from uuid import UUID

import pystache
from pystache.common import PystacheError
from pystache.parser import ParsingError, parse

VARIABLES = (
    "job_id",
    "job_name",
    "account_id",
    "webhook_id",
    "execution_id",
    "occurrence_id",
    "nominal_time",
    "attempt",
    # A chained job's occurrence: the upstream job's execution that fired it (empty for any other occurrence).
    "upstream_job_id",
    "upstream_occurrence_id",
    "upstream_status",
    "upstream_response_code",
    "upstream_response_body",
    "upstream_error",
)


class TemplateError(ValueError):
    """The template does not render: a syntax error, or a variable or partial that does not exist."""


_JSON_TYPES = frozenset({"application/json", "text/json", "application/x-ndjson", "application/ndjson"})


def sent_content_type(content_type: str, headers: Mapping[str, str]) -> str:
    """The Content-Type the body goes out with: a webhook's own header wins over its content_type."""
    return next((v for k, v in headers.items() if k.lower() == "content-type"), content_type)


def _json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def escape_for(content_type: str) -> Callable[[str], str]:
    """How `{{name}}` values are escaped in a body of this content type."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or media.endswith("+json"):
        return _json_escape
    if media == "application/x-www-form-urlencoded":
        return quote_plus
    if media in ("text/html", "application/xml", "text/xml") or media.endswith("+xml"):
        return lambda value: html.escape(value, quote=True)
    return lambda value: value


def render(template: str, content_type: str, variables: Mapping[str, str | int]) -> str:
    """The body for one attempt. Raises TemplateError if the template does not render."""
    if "{{" not in template:
        return template  # nothing to render: the common case of a fixed body stays byte for byte
    renderer = pystache.Renderer(escape=escape_for(content_type), missing_tags="strict", partials={})
    try:
        return str(renderer.render(template, dict(variables)))
    except (PystacheError, ParsingError, KeyError, ValueError, IndexError, RecursionError) as exc:
        raise TemplateError(f"body_template does not render: {type(exc).__name__}: {exc}") from exc


def sample_variables() -> dict[str, str | int]:
    """Values of the right shape, to check a template renders before it is stored."""
    zero = UUID(int=0)
    return {
        "job_id": str(zero),
        "job_name": "job",
        "account_id": str(zero),
        "webhook_id": str(zero),
        "execution_id": str(zero),
        "occurrence_id": f"{zero}_20000101T000000.000000Z",
        "nominal_time": datetime(2000, 1, 1, tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        "attempt": 1,
        "upstream_job_id": str(zero),
        "upstream_occurrence_id": f"{zero}_20000101T000000.000000Z",
        "upstream_status": "success",
        "upstream_response_code": 200,
        "upstream_response_body": "ok",
        "upstream_error": "",
    }


def check_template(template: str, content_type: str) -> None:
    """Raise TemplateError unless the template renders with every variable it may use, and every section it opens
    is closed (pystache renders an unclosed section to the end of the body rather than refusing it)."""
    try:
        parse(template, raise_on_mismatch=True)
    except (ParsingError, ValueError, IndexError, RecursionError) as exc:
        raise TemplateError(f"body_template does not render: {type(exc).__name__}: {exc}") from exc
    render(template, content_type, sample_variables())
