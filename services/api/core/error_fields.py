"""What each surface calls the field a domain error names (shared.domain.errors.Field): one table, a function per
surface. The domain names the field as the job's state does; a surface shows its own name for it."""

from __future__ import annotations

from shared.domain.errors import Field

# The NEXUS field that carries each kind of schedule (the dashboard's form names its fields the same way).
SCHEDULE_FIELDS = {
    "cron": "cron_expression",
    "interval": "interval_seconds",
    "date": "scheduled_time",
    "calendar": "calendar_rule",
}
# Fields the NEXUS surface names otherwise than the job's state; the rest keep their names.
_NEXUS_NAMES: dict[Field, str] = {"task": "task_name"}
# The primary API (/api/jobs, /webhooks) names every field as the job's state does: its schedule is "schedule".
_REST_NAMES: dict[Field, str] = {}


def nexus_field(field: Field | None, schedule_kind: str | None) -> str | None:
    """The NEXUS surface's (and the dashboard's) name for a domain field: a schedule by its kind."""
    if field == "schedule" and schedule_kind in SCHEDULE_FIELDS:
        return SCHEDULE_FIELDS[schedule_kind]
    return None if field is None else _NEXUS_NAMES.get(field, field)


def rest_field(field: Field | None) -> str | None:
    """The primary API's name for a domain field."""
    return None if field is None else _REST_NAMES.get(field, field)
