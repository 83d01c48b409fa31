"""Images of an asset on request: the frame shown at any time, short animated previews, and the poster.

A request's parameters are normalized (times to the millisecond, a fit that changes nothing dropped) into a
storage key under `images/<version>/`. The first request for a key renders it with a `media.image` job on a
worker and waits for it; every later one is answered from storage. Each render counts against the asset's
MEDIAJOBS_MAX_IMAGE_RENDERS, which a new HLS version (reprocess) resets with the images it removes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mediajobs.db.models import Job, Media, utcnow
from mediajobs.db.session import Database
from mediajobs.errors import Conflict, InvalidField, PermanentError
from mediajobs.jobs import states as job_states
from mediajobs.media import assets
from mediajobs.toolkit.stills import Animation, Fit, Still

DIR = "images/"
MAX_SIDE = 1920
MAX_ANIMATED_S = 10.0
MAX_ANIMATED_WIDTH = 640
MAX_FPS = 15
POSTER_WIDTH = 640
KIND = "media.image"
# How long a not-ready asset's client should wait before asking again.
NOT_READY_RETRY_S = 5


class StillSpec(BaseModel):
    """The frame shown at `time_ms`, scaled (None: the source's size, or following the other side)."""

    model_config = ConfigDict(extra="forbid")
    time_ms: int = Field(ge=0)
    width: int | None = Field(default=None, ge=1, le=MAX_SIDE)
    height: int | None = Field(default=None, ge=1, le=MAX_SIDE)
    fit: Fit = "preserve"
    format: Still = "jpg"

    def name(self) -> str:
        side = lambda v: "auto" if v is None else str(v)  # noqa: E731
        return f"thumbnail/{self.time_ms}ms_{side(self.width)}x{side(self.height)}_{self.fit}.{self.format}"


class AnimatedSpec(BaseModel):
    """`fps` frames a second of [start_ms, end_ms), `width` wide, looping."""

    model_config = ConfigDict(extra="forbid")
    start_ms: int = Field(ge=0)
    end_ms: int = Field(gt=0)
    width: int = Field(ge=1, le=MAX_ANIMATED_WIDTH)
    fps: int = Field(ge=1, le=MAX_FPS)
    format: Animation = "gif"

    def name(self) -> str:
        return f"animated/{self.start_ms}-{self.end_ms}ms_{self.width}w_{self.fps}fps.{self.format}"


class ImageParams(BaseModel):
    """A `media.image` job: one picture of HLS version `version`, stored at `path` (relative to the asset).

    `poster`: the picture becomes the asset's thumbnail (PUT .../poster).
    """

    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    still: StillSpec | None = None
    animated: AnimatedSpec | None = None
    poster: bool = False

    @property
    def path(self) -> str:
        if self.poster:
            assert self.still is not None
            return f"thumbnail/poster-{self.version}-{self.still.time_ms}ms.jpg"
        spec = self.still or self.animated
        assert spec is not None
        return f"{DIR}{self.version}/{spec.name()}"


def still(
    media: Media,
    *,
    time: float | None,
    width: int | None,
    height: int | None,
    fit: Fit,
    fmt: Still,
) -> StillSpec:
    """The normalized request for a frame; InvalidParams naming `time` when it is outside the asset."""
    duration = _duration(media)
    if time is None:
        time = float((media.poster or {}).get("time") or 0.0)
    if time > duration:
        raise InvalidField("time", f"{time:g} s is after the end of the asset ({duration:g} s)")
    if width is None or height is None:
        fit = "preserve"  # crop and pad need both sides; with one they change nothing
    return StillSpec(time_ms=int(time * 1000), width=width, height=height, fit=fit, format=fmt)


def animated(
    media: Media, *, start: float, end: float | None, width: int, fps: int, fmt: Animation
) -> AnimatedSpec:
    """The normalized request for an animated preview; InvalidParams naming the field that does not fit."""
    duration = _duration(media)
    if start >= duration:
        raise InvalidField("start", f"{start:g} s is not before the end of the asset ({duration:g} s)")
    if end is None:
        end = min(duration, start + 5.0)
    if end <= start:
        raise InvalidField("end", f"{end:g} s must be after start ({start:g} s)")
    if end > duration:
        raise InvalidField("end", f"{end:g} s is after the end of the asset ({duration:g} s)")
    if end - start > MAX_ANIMATED_S:
        asked = f"{end - start:g} s asked"
        raise InvalidField("end", f"an animated image lasts at most {MAX_ANIMATED_S:g} s ({asked})")
    return AnimatedSpec(start_ms=int(start * 1000), end_ms=int(end * 1000), width=width, fps=fps, format=fmt)


def poster(media: Media, *, time: float) -> StillSpec:
    """The poster at `time`: a JPEG as wide as the source, at most POSTER_WIDTH (as thumbnails are)."""
    spec = still(media, time=time, width=None, height=None, fit="preserve", fmt="jpg")
    width = min(POSTER_WIDTH, int((media.probe or {}).get("width") or POSTER_WIDTH))
    return spec.model_copy(update={"width": width})


def _duration(media: Media) -> float:
    return float((media.probe or {}).get("duration") or 0.0)


def renderable(media: Media) -> str:
    """The HLS version images are made from; Conflict (409) when there is nothing to make them from yet."""
    if media.state != assets.READY:
        raise NotReady(f"media {media.id} is {media.state}; images are made once it is ready")
    if not media.hls or not (media.probe or {}).get("width"):
        what = "no video" if media.hls else "no HLS stream (reprocess it with the hls step)"
        raise Conflict(f"media {media.id} has {what}; there are no images to make")
    return str(media.hls["path"]).split("/", 1)[1]


class NotReady(Conflict):
    """The asset is not ready yet; the request may succeed later (409 with Retry-After)."""


def reserve(db: Database, media_id: str, cap: int) -> bool:
    """Count one more render for the asset, unless it has had `cap` already."""
    with db.write() as session:
        done = session.execute(
            update(Media)
            .where(Media.id == media_id, Media.image_renders < cap)
            .values(image_renders=Media.image_renders + 1)
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


def in_flight(db: Database, media_id: str, params: dict[str, Any]) -> Job | None:
    """An unfinished render of the same picture (a request that came a moment earlier), to wait for."""
    with db.read() as session:
        query = select(Job).where(
            Job.media_id == media_id, Job.kind == KIND, Job.state.in_(job_states.UNFINISHED)
        )
        return next((job for job in session.scalars(query) if job.params == params), None)


def set_poster(session: Session, media_id: str, path: str, time_s: float) -> str | None:
    """In the caller's transaction (with the cleanup of what it replaces): the asset's thumbnail becomes
    `path` (a chosen poster); the path it replaces, or None."""
    media = session.get(Media, media_id, with_for_update=True)
    if media is None or media.state == assets.DELETING:
        raise PermanentError(f"media asset {media_id} was deleted", code="not_found")
    old = media.thumbnail
    media.thumbnail = path
    media.poster = {"time": time_s, "chosen": True}
    media.updated_at = utcnow()
    return old if old != path else None
