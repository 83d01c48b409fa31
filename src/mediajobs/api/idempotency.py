"""`Idempotency-Key`: the same key within 24 h answers with the first answer and creates nothing new.

As draft-ietf-httpapi-idempotency-key-header says: a key is looked up by a composite of the key and who sent
it (the caller's API key when keys are set; one scope for everyone when they are not) and the route, and it is
bound to the payload it was first used with: the same key with another payload is a 422, never the first
answer to a different request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from mediajobs.api.problems import Problem, field_error, invalid
from mediajobs.api.security import api_key_id
from mediajobs.db.models import IdempotencyKey, utcnow
from mediajobs.db.session import Database

TTL = timedelta(hours=24)
IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]
HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Use:
    """One request's use of a key: where it is looked up (caller and route), and its payload's fingerprint."""

    scope: str
    key: str | None
    fingerprint: str

    def with_payload(self, payload: Any) -> Use:
        return dataclasses.replace(self, fingerprint=fingerprint(payload))


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255:
        raise invalid([HEADER], "must be 1 to 255 characters")
    return key


def fingerprint(payload: Any) -> str:
    """A digest of a request's payload in canonical JSON: key order and spacing do not count."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def caller(request: Request) -> str:
    """Whose key this is: the API key the request came in with; "" (one scope for all) without keys."""
    key_id = api_key_id(request)
    return f"key:{key_id} " if key_id else ""


def use(request: Request, key: str | None, payload: Any) -> Use:
    """This request's use of `key` (the header's value) with `payload` (what makes two requests the same)."""
    return Use(f"{caller(request)}POST {request.url.path}", check_key(key), fingerprint(payload))


def recorded(db: Database, used: Use) -> bool:
    """Whether this key has an answer within 24 h (before reading a payload that is costly to read)."""
    if used.key is None:
        return False
    with db.read() as session:
        row = session.get(IdempotencyKey, (used.scope, used.key))
        return row is not None and row.created_at >= utcnow() - TTL


def replay(db: Database, used: Use) -> JSONResponse | None:
    """The first answer given under this key, if any (within 24 h); a 422 when it was for another payload."""
    if used.key is None:
        return None
    with db.read() as session:
        row = session.get(IdempotencyKey, (used.scope, used.key))
        if row is None or row.created_at < utcnow() - TTL:
            return None
        if row.fingerprint is not None and row.fingerprint != used.fingerprint:
            raise reused()
        headers = {"Location": row.location} if row.location else {}
        headers["Idempotent-Replayed"] = "true"
        return JSONResponse(row.body, status_code=row.status_code, headers=headers)


def reused() -> Problem:
    message = (
        "this Idempotency-Key was used in the last 24 h with another payload; a key may only be reused to "
        "repeat the same request (send the first payload again to get the first answer, or use a new key)"
    )
    return Problem(422, message, errors=[field_error([HEADER], message)], slug="idempotency-key-reused")


def remember(session: Session, used: Use | None, *, status: int, body: Any, location: str | None) -> None:
    if used is None or used.key is None:
        return
    stale = session.get(IdempotencyKey, (used.scope, used.key))
    if stale is not None:  # expired (replay() found none live); the key may be used afresh
        session.delete(stale)
        session.flush()
    session.add(
        IdempotencyKey(
            scope=used.scope,
            key=used.key,
            fingerprint=used.fingerprint,
            status_code=status,
            body=body,
            location=location,
            created_at=utcnow(),
        )
    )
