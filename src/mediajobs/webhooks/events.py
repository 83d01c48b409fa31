"""Emission: an event becomes one delivery (and one delivery job) per endpoint that subscribed to it.

Emission runs after every terminal job, so with no endpoint it must cost next to nothing: one query on the
small, indexed endpoint table, and the payload is only built when someone listens.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from mediajobs.broker import broker_for
from mediajobs.config import get_settings
from mediajobs.db.models import Job, Media, WebhookDelivery, utcnow
from mediajobs.db.session import Database, get_db
from mediajobs.jobs import lifecycle, states
from mediajobs.webhooks.endpoints import PENDING

log = logging.getLogger(__name__)

DELIVER_KIND = "webhook.deliver"
JOB_EVENTS = {
    states.SUCCEEDED: "job.succeeded",
    states.FAILED: "job.failed",
    states.CANCELLED: "job.cancelled",
}
MEDIA_EVENTS = {"ready": "media.ready", "failed": "media.failed"}

# Plain SQL on a pooled DBAPI connection: through SQLAlchemy's Connection (its BEGIN and ROLLBACK) the same
# query cost 120-190 us on SQLite instead of 17 us, and it runs after every terminal job.
SUBSCRIBERS_SQL = "SELECT id, events FROM webhook_endpoints WHERE enabled"


def subscribers(db: Database, event_type: str) -> list[str]:
    """Ids of the enabled endpoints that want `event_type`."""
    conn = db.read_engine.raw_connection()
    try:
        cursor = conn.cursor()
        cursor.execute(SUBSCRIBERS_SQL)
        rows = cursor.fetchall()
        cursor.close()
    finally:
        conn.close()
    # SQLite hands JSON back as text, psycopg already decoded.
    return [
        str(row[0])
        for row in rows
        if event_type in (json.loads(row[1]) if isinstance(row[1], str) else row[1])
    ]


def emit(db: Database, event_type: str, data: Callable[[], dict[str, Any]]) -> list[str]:
    """Record a delivery for every subscriber and queue its job; returns the delivery ids."""
    targets = subscribers(db, event_type)
    if not targets:
        return []
    now = utcnow()
    payload = {"type": event_type, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data()}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    made = []
    for endpoint_id in targets:
        delivery_id = str(uuid.uuid4())

        def with_job(
            session: Session, job: Job, endpoint_id: str = endpoint_id, delivery_id: str = delivery_id
        ) -> None:
            session.add(
                WebhookDelivery(
                    id=delivery_id,
                    endpoint_id=endpoint_id,
                    event_type=event_type,
                    body=body,
                    state=PENDING,
                    job_id=job.id,
                    created_at=now,
                    updated_at=now,
                )
            )

        lifecycle.submit(
            db,
            broker_for(get_settings()),
            kind=DELIVER_KIND,
            params={"delivery_id": delivery_id},
            with_job=with_job,
        )
        made.append(delivery_id)
    return made


def _safely(event_type: str, fn: Callable[[], object]) -> None:
    # An event that cannot be recorded must never fail the job or the request that caused it.
    try:
        fn()
    except Exception:
        log.exception("could not emit webhook event %s", event_type)


def job_ended(job: Job) -> None:
    """job.succeeded / job.failed / job.cancelled, for every kind except webhook deliveries themselves."""
    event_type = JOB_EVENTS.get(job.state)
    if event_type is None or job.kind == DELIVER_KIND:
        return
    from mediajobs.jobs.schemas import public

    db = get_db(get_settings().effective_database_url)
    _safely(event_type, lambda: emit(db, event_type, lambda: public(job)))


def media_json(db: Database, media: Media) -> dict[str, Any]:
    """The media JSON of the API, with URLs under MEDIAJOBS_API_URL (signed when auth is on)."""
    from mediajobs.media import assets, captions, playback, schemas

    settings = get_settings()
    token = playback.sign(settings, media.id)
    return schemas.public(
        media,
        jobs=assets.job_ids(db, media.id),
        base_url=settings.api_url,
        token=token,
        captions=captions.tracks(db, media.id),
    )


def media_changed(db: Database, media_id: str, state: str) -> None:
    """media.ready / media.failed, after the asset moved to that state."""
    event_type = MEDIA_EVENTS.get(state)
    if event_type is None:
        return

    def data() -> dict[str, Any]:
        from mediajobs.media import assets

        media = assets.find_media(db, media_id)
        return media_json(db, media) if media is not None else {"id": media_id, "state": state}

    _safely(event_type, lambda: emit(db, event_type, data))


def media_deleted(db: Database, media: Media | None) -> None:
    """media.deleted, with the asset's JSON as it was just before its record went."""
    if media is not None:
        _safely("media.deleted", lambda: emit(db, "media.deleted", lambda: media_json(db, media)))
