"""The NEXUS document's job bodies as the core's job input (services/api/core/job_input.py): the same fields, four
of them by other names; a field a PUT leaves out stays unset."""

from __future__ import annotations

import msgspec
from msgspec import UnsetType

from services.api.core.job_input import JobInput
from services.api.nexus.schemas import NexusJobCreate, NexusJobUpdate

# The document's names of the input's fields that it names otherwise.
_RENAMED = {"job_type": "kind", "is_active": "enabled", "misfire_policy": "misfire", "overlap_policy": "overlap"}


def job_input(body: NexusJobCreate | NexusJobUpdate) -> JobInput:
    """The job input a create or update body gives (a create body gives every field, its defaults included; a
    misfire policy given as null is the default one)."""
    given = {
        _RENAMED.get(name, name): value
        for name, value in msgspec.structs.asdict(body).items()
        if not isinstance(value, UnsetType) and not (name == "misfire_policy" and value is None)
    }
    return JobInput(**given)
