"""Rows by public id: the canonical form of an id, and the one look-up that turns a caller's id into a row."""

from __future__ import annotations

import uuid
from typing import TypeVar

from mediajobs.db.session import Database
from mediajobs.errors import NotFound

T = TypeVar("T")


def parse_id(value: str) -> str | None:
    """The canonical form of a UUID, or None when `value` is not one."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


def find(db: Database, model: type[T], record_id: str) -> T | None:
    """The row of `model` with that id (any spelling of the UUID), or None."""
    canonical = parse_id(record_id)
    if canonical is None:
        return None
    with db.read() as session:
        return session.get(model, canonical)


def get(db: Database, model: type[T], record_id: str, *, what: str) -> T:
    """The row of `model` with that id; NotFound ("no `what` with id ...") otherwise."""
    row = find(db, model, record_id)
    if row is None:
        raise NotFound(f"no {what} with id {record_id!r}")
    return row
