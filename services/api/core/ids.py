"""Ids in paths."""

from __future__ import annotations

from uuid import UUID


def parse_id(raw: str, error: type[Exception], what: str) -> UUID:
    """Path ids are UUIDs; anything else cannot name an existing resource (`error`, a not-found error)."""
    try:
        return UUID(raw)
    except ValueError:
        raise error(f"{what} {raw!r} not found") from None
