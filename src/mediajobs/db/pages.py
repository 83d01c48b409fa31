"""Newest-first keyset pagination with opaque cursors, for every list the API serves."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_

from mediajobs.db.session import Database


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


class BadCursor(ValueError):
    """The cursor was not made by this API."""


def encode_cursor(created_at: datetime, row_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), row_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this API returned; start again without it") from exc


def newest_first(db: Database, query: Select[Any], model: Any, *, limit: int, cursor: str | None) -> Page:
    """One page of `query` over `model` (which has created_at and id), newest first, after `cursor`."""
    if cursor:
        created_at, row_id = decode_cursor(cursor)
        query = query.where(
            or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < row_id))
        )
    query = query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    with db.read() as session:
        rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None)
