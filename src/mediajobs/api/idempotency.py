"""`Idempotency-Key`: the same key within 24 h answers with the first answer and creates nothing new."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from mediajobs.api.problems import invalid
from mediajobs.db.models import IdempotencyKey, utcnow
from mediajobs.db.session import Database

TTL = timedelta(hours=24)
IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255:
        raise invalid(["Idempotency-Key"], "must be 1 to 255 characters")
    return key


def replay(db: Database, scope: str, key: str | None) -> JSONResponse | None:
    if key is None:
        return None
    with db.read() as session:
        row = session.get(IdempotencyKey, (scope, key))
        if row is None or row.created_at < utcnow() - TTL:
            return None
        headers = {"Location": row.location} if row.location else {}
        headers["Idempotent-Replayed"] = "true"
        return JSONResponse(row.body, status_code=row.status_code, headers=headers)


def replay_for(
    request: Request, db: Database, key: str | None
) -> tuple[str, str | None, JSONResponse | None]:
    """(scope, key, the first answer if this key was used on this URL within 24 h)."""
    scope, key = f"POST {request.url.path}", check_key(key)
    return scope, key, replay(db, scope, key)


def remember(
    session: Session, scope: str, key: str | None, *, status: int, body: Any, location: str | None
) -> None:
    if key is None:
        return
    stale = session.get(IdempotencyKey, (scope, key))
    if stale is not None:  # expired (replay() found none live); the key may be used afresh
        session.delete(stale)
        session.flush()
    session.add(
        IdempotencyKey(
            scope=scope, key=key, status_code=status, body=body, location=location, created_at=utcnow()
        )
    )
