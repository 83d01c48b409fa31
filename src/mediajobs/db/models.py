"""Tables: jobs (the database of record for every unit of work), media assets, idempotency keys, webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(500), default="")
    eta_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    queue: Mapped[str] = mapped_column(String(32), default="default")
    priority: Mapped[int] = mapped_column(Integer, default=5)
    media_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    result: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Engine bookkeeping, not part of the public JSON.
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    time_limit_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Fan-out (jobs/fanout.py): a child's parent and its share of the parent's progress; a parent's number of
    # children, the kind that joins them, and whether it waits for them ("waiting") or joins ("joining").
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    children_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    join_kind: Mapped[str | None] = mapped_column(String(100), nullable=True)
    fan_phase: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The slice of a parent's 0-100 % its children fill while it waits; its join fills the rest up to 100.
    fan_from: Mapped[float | None] = mapped_column(Float, nullable=True)
    fan_to: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_state_created", "state", "created_at"),
        Index("ix_jobs_outbox", "state", "published_at"),
        # Every child's end asks whether its siblings are all done: one index range per parent and state.
        Index("ix_jobs_parent_state", "parent_id", "state"),
    )


class Media(Base):
    __tablename__ = "media"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # What people call it (media/titles.py), and the same case-folded: `?q=` searches that. Server defaults
    # only, like image_renders below.
    title: Mapped[str] = mapped_column(String(200), server_default="")
    title_search: Mapped[str] = mapped_column(String(1000), server_default="")
    original: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    hls: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    thumbnail: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    pipeline: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the master URL first played (fast start), before the whole ladder is done.
    playable_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Made from the current HLS version (media/downloads, media/storyboards, media/images): progressive files,
    # the storyboard, and how many images were rendered on request (against MEDIAJOBS_MAX_IMAGE_RENDERS).
    downloads: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    storyboard: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # {"time": seconds, "chosen": bool}: the frame the thumbnail shows; `chosen` when set by PUT .../poster.
    poster: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Only a server default: rows written through an older schema (migration tests) must not name it.
    image_renders: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (Index("ix_media_created", "created_at", "id"),)
    # Server defaults are not read back on insert (no RETURNING): a row written through an older schema (the
    # migration tests do) names no column that schema lacks.
    __mapper_args__ = {"eager_defaults": False}


class MediaChunk(Base):
    """One chunk of an HLS version's segment grid: its segments' durations and whether it is encoded.

    Written once by the job that plans the ladder; each chunk's encoder marks it done. The API builds the
    growing playlists of a version still being encoded from the done chunks, so no two writers race on a file.
    """

    __tablename__ = "media_chunks"

    media_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[str] = mapped_column(String(40), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_segment: Mapped[int] = mapped_column(Integer)
    # Each segment's EXTINF; empty for the audio rendition's row (index -1).
    durations: Mapped[list[float]] = mapped_column(JSON)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bytes of each segment per rendition, once done: the join measures bandwidths from them.
    sizes: Mapped[dict[str, list[int]] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MediaCaption(Base):
    """A caption track of an asset, stored as `captions/<id>.vtt` (and its subtitle playlist) beside it."""

    __tablename__ = "media_captions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    media_id: Mapped[str] = mapped_column(String(36), index=True)
    language: Mapped[str] = mapped_column(String(35))
    label: Mapped[str] = mapped_column(String(200))
    cues: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Upload(Base):
    """A resumable (tus) upload: its bytes so far are in the storage (`partial`), how many in `offset`.

    Every API process can continue it: a request writes only while it holds the row's claim (`writer`,
    renewed at `claimed_at`), taken by a conditional update on the offset, so two never write at once.
    """

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    media_id: Mapped[str] = mapped_column(String(36), index=True)
    # uploading -> done (the asset is processed), or gone for good when terminated or expired.
    state: Mapped[str] = mapped_column(String(16))
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    key: Mapped[str] = mapped_column(Text)
    # The storage's state of the partial object (storage/partial.py); what `offset` bytes it holds.
    partial: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Upload-Metadata as sent (HEAD answers it) and what was made of it: filename, content type, pipeline.
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    writer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_uploads_state_expires", "state", "expires_at"),)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 of the first request's payload: the key answers only that payload again (NULL: recorded
    # before fingerprints existed, answers any).
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[Any] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class WebhookEndpoint(Base):
    """A URL that receives signed event notifications."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_webhook_endpoints_created", "created_at", "id"),
        # Emission looks up enabled endpoints after every terminal job: this keeps that one query cheap.
        Index("ix_webhook_endpoints_enabled", "enabled"),
    )


class WebhookDelivery(Base):
    """One event for one endpoint; its id is the `webhook-id` every attempt sends."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(50))
    # The exact bytes signed and sent, so that every retry carries the same body.
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),)


class WebhookAttempt(Base):
    """One HTTP request of a delivery, as the delivery log shows it."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)


class Node(Base):
    """An API or worker process (`nodes.py`): what it shares with others, its heartbeat, storage health."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    # The shared settings as they can be shown (URLs masked): database, broker, storage, kind_modules.
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {"code", "message", "at"} of the storage failure it last saw; null while its storage works.
    storage_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    interval_s: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
