"""Emission: an event becomes one delivery (and one delivery job) per endpoint that subscribed to it.

The job events come from the engine's job-ended listeners (`jobs/hooks.py`), the media events from the asset
events (`media/events.py`): this module registers on both when it is imported. Emission runs after every
terminal job, so with no endpoint it must cost next to nothing: one query on the small, indexed endpoint
table, and the payload is only built when someone listens.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from mediajobs.db.models import Job, Media, WebhookDelivery, utcnow
from mediajobs.db.session import Database
from mediajobs.jobs import hooks, lifecycle, states
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.schemas import public as job_public
from mediajobs.media import assets, captions, playback, schemas
from mediajobs.media.events import MediaEvent, on_media_event
from mediajobs.webhooks.endpoints import PENDING

log = logging.getLogger(__name__)

DELIVER_KIND = "webhook.deliver"
JOB_EVENTS = {
    states.SUCCEEDED: "job.succeeded",
    states.FAILED: "job.failed",
    states.CANCELLED: "job.cancelled",
}

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


def emit(services: Services, event_type: str, data: Callable[[], dict[str, Any]]) -> list[str]:
    """Record a delivery for every subscriber and queue its job; returns the delivery ids."""
    targets = subscribers(services.db, event_type)
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

        lifecycle.submit(services, kind=DELIVER_KIND, params={"delivery_id": delivery_id}, with_job=with_job)
        made.append(delivery_id)
    return made


def _safely(event_type: str, fn: Callable[[], object]) -> None:
    # An event that cannot be recorded must never fail the job or the request that caused it.
    try:
        fn()
    except Exception:
        log.exception("could not emit webhook event %s", event_type)


@hooks.on_job_ended
def job_ended(job: Job, services: Services) -> None:
    """job.succeeded / job.failed / job.cancelled, for every kind except webhook deliveries themselves."""
    event_type = JOB_EVENTS.get(job.state)
    if event_type is None or job.kind == DELIVER_KIND:
        return
    _safely(event_type, lambda: emit(services, event_type, lambda: job_public(job)))


def media_json(services: Services, media: Media) -> dict[str, Any]:
    """The media JSON of the API, with URLs under MEDIAJOBS_API_URL (signed when auth is on)."""
    settings = services.settings
    token = playback.sign(settings, media.id)
    return schemas.public(
        media,
        jobs=assets.job_ids(services.db, media.id),
        base_url=settings.effective_api_url,
        token=token,
        captions=captions.tracks(services.db, media.id),
    )


@on_media_event
def media_changed(event: MediaEvent, services: Services) -> None:
    """media.ready / media.failed after the asset moved to that state; media.deleted once it is gone."""

    def data() -> dict[str, Any]:
        media = event.media or assets.find_media(services.db, event.media_id)
        if media is None:  # deleted since: what the event says is all there is
            return {"id": event.media_id, "state": event.type.removeprefix("media.")}
        return media_json(services, media)

    _safely(event.type, lambda: emit(services, event.type, data))
