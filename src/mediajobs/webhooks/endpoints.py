"""Webhook endpoint and delivery records, and their public JSON."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mediajobs.db import records
from mediajobs.db.models import Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from mediajobs.db.pages import Page, newest_first
from mediajobs.db.session import Database
from mediajobs.errors import NotFound
from mediajobs.jobs import states
from mediajobs.webhooks import signing

EVENTS = ("job.succeeded", "job.failed", "job.cancelled", "media.ready", "media.failed", "media.deleted")
# Delivery states: waiting for its first attempt, waiting for the next one, done, given up.
PENDING, RETRYING, SUCCEEDED, FAILED = "pending", "retrying", "succeeded", "failed"


def _stamp(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def create_endpoint(db: Database, *, url: str, events: list[str]) -> WebhookEndpoint:
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        url=url,
        events=events,
        secret=signing.new_secret(),
        enabled=True,
        disabled_reason=None,
        created_at=now,
        updated_at=now,
    )
    with db.write() as session:
        session.add(endpoint)
    return endpoint


def get_endpoint(db: Database, endpoint_id: str) -> WebhookEndpoint:
    return records.get(db, WebhookEndpoint, endpoint_id, what="webhook endpoint")


def find_endpoint(db: Database, endpoint_id: str) -> WebhookEndpoint | None:
    with db.read() as session:
        return session.get(WebhookEndpoint, endpoint_id)


def list_endpoints(db: Database, *, limit: int, cursor: str | None) -> Page:
    return newest_first(db, select(WebhookEndpoint), WebhookEndpoint, limit=limit, cursor=cursor)


def delete_endpoint(db: Database, endpoint_id: str) -> None:
    """Remove the endpoint and its delivery log; its pending delivery jobs find nothing and end quietly."""
    endpoint = get_endpoint(db, endpoint_id)
    with db.write() as session:
        deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
        session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))


def _set_enabled(session: Session, endpoint_id: str, *, enabled: bool, reason: str | None) -> None:
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(enabled=enabled, disabled_reason=None if enabled else reason, updated_at=utcnow())
    )


def endpoint_public(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """The endpoint's JSON; the secret only in the answer that created it."""
    answer: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": _stamp(endpoint.created_at),
        "updated_at": _stamp(endpoint.updated_at),
    }
    if with_secret:
        answer["secret"] = endpoint.secret
    return answer


def get_delivery(db: Database, endpoint: WebhookEndpoint, delivery_id: str) -> WebhookDelivery:
    delivery = records.find(db, WebhookDelivery, delivery_id)
    if delivery is not None and delivery.endpoint_id == endpoint.id:
        return delivery
    raise NotFound(f"no delivery {delivery_id!r} for webhook endpoint {endpoint.id}")


def find_delivery(db: Database, delivery_id: str) -> WebhookDelivery | None:
    with db.read() as session:
        return session.get(WebhookDelivery, delivery_id)


def list_deliveries(db: Database, endpoint: WebhookEndpoint, *, limit: int, cursor: str | None) -> Page:
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    return newest_first(db, query, WebhookDelivery, limit=limit, cursor=cursor)


def set_delivery(db: Database, delivery_id: str, **values: Any) -> None:
    values.setdefault("updated_at", utcnow())
    with db.write() as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))


def record_attempt(
    db: Database,
    attempt: WebhookAttempt,
    *,
    state: str,
    endpoint: tuple[str, bool, str | None] | None = None,
) -> None:
    """Log one attempt and move its delivery to `state`, in one transaction; with `endpoint` (id, enabled,
    reason) the endpoint is enabled or disabled in it too, so nobody sees the outcome without its effect."""
    with db.write() as session:
        session.add(attempt)
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == attempt.delivery_id)
            .values(state=state, updated_at=utcnow())
        )
        if endpoint is not None:
            endpoint_id, enabled, reason = endpoint
            _set_enabled(session, endpoint_id, enabled=enabled, reason=reason)


def deliveries_public(db: Database, deliveries: list[WebhookDelivery]) -> list[dict[str, Any]]:
    """The delivery log entries, each with its attempts and, while retrying, when the next one is due."""
    ids = [d.id for d in deliveries]
    attempts: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    due: dict[str, Any] = {}
    if ids:
        with db.read() as session:
            for row in session.scalars(
                select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)).order_by(WebhookAttempt.id)
            ):
                attempts[row.delivery_id].append(
                    {
                        "at": _stamp(row.at),
                        "status_code": row.status_code,
                        "error": row.error,
                        "duration_ms": round(row.duration_ms, 1),
                        "response": row.response_excerpt,
                    }
                )
            job_ids = [d.job_id for d in deliveries if d.job_id]
            for job_id, run_after in session.execute(
                select(Job.id, Job.run_after).where(Job.id.in_(job_ids), Job.state == states.RETRYING)
            ):
                due[job_id] = run_after
    return [
        {
            "id": d.id,
            "endpoint_id": d.endpoint_id,
            "event": d.event_type,
            "state": d.state,
            "attempts": attempts[d.id],
            "next_attempt_at": _stamp(due.get(d.job_id or "")),
            "job_id": d.job_id,
            "created_at": _stamp(d.created_at),
            "updated_at": _stamp(d.updated_at),
        }
        for d in deliveries
    ]
