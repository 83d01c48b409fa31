"""Media asset records: where their files live and the moves between their states (their JSON: schemas)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from mediajobs.db import records
from mediajobs.db.models import Job, Media, MediaCaption, MediaChunk, utcnow
from mediajobs.db.pages import Page, newest_first
from mediajobs.db.session import Database
from mediajobs.errors import InvalidParams
from mediajobs.jobs import states as job_states
from mediajobs.jobs.hooks import Services
from mediajobs.media import events, titles
from mediajobs.media.states import (  # noqa: F401
    DELETING,
    FAILED,
    IMPORTING,
    PENDING,
    PROCESSING,
    READY,
    STATES,
    UPLOADING,
)

# The asset states are spelled in media/states.py (the CLI reads them there); callers say assets.READY.
# What a pipeline may do after the original is stored; the API's `pipeline` fields take these. mp4, audio
# and storyboard are made from the HLS ladder once it is whole (media/outputs.py).
Step = Literal["hls", "thumbnail", "mp4", "audio", "storyboard"]
PIPELINE_STEPS: tuple[str, ...] = get_args(Step)
DEFAULT_PIPELINE: list[Step] = list(get_args(Step))
LADDER_STEPS = ("mp4", "audio", "storyboard")


def check_pipeline(steps: Sequence[str], *, has_hls: bool = False) -> None:
    """InvalidParams when a step made from the ladder comes without a ladder to make it from."""
    needing = [s for s in steps if s in LADDER_STEPS]
    if needing and "hls" not in steps and not has_hls:
        raise InvalidParams(
            f"{', '.join(needing)} {'is' if len(needing) == 1 else 'are'} made from the HLS ladder; "
            "add hls to the pipeline"
        )


def _whole(steps: list[Step]) -> list[Step]:
    try:
        check_pipeline(steps)
    except InvalidParams as exc:
        raise ValueError(str(exc)) from exc
    return steps


# A request's pipeline: known steps, and the ladder wherever something is made from it.
Pipeline = Annotated[list[Step], AfterValidator(_whole)]


def prefix(media_id: str) -> str:
    """Every object of an asset lives under this prefix."""
    return f"media/{media_id}/"


def original_key(media_id: str, filename: str) -> str:
    return f"{prefix(media_id)}original/{filename}"


def safe_filename(name: str | None, default: str = "upload.bin") -> str:
    """A storage-safe file name that keeps the extension (ffprobe and players like one)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in base).strip("._")
    return cleaned[:120] or default


def new_media(
    *,
    source: dict[str, Any],
    title: str = titles.UNTITLED,
    state: str = PENDING,
    parent_id: str | None = None,
    pipeline: Sequence[str] | None = None,
    original: dict[str, Any] | None = None,
    media_id: str | None = None,
) -> Media:
    now = utcnow()
    return Media(
        id=media_id or str(uuid.uuid4()),
        state=state,
        source=source,
        title=title,
        title_search=titles.search_key(title),
        parent_id=parent_id,
        original=original,
        probe=None,
        hls=None,
        thumbnail=None,
        error=None,
        pipeline=list(pipeline) if pipeline is not None else DEFAULT_PIPELINE,
        extra={},
        downloads=[],
        storyboard=None,
        poster=None,
        created_at=now,
        updated_at=now,
    )


def get_media(db: Database, media_id: str) -> Media:
    return records.get(db, Media, media_id, what="media asset")


def find_media(db: Database, media_id: str) -> Media | None:
    with db.read() as session:
        return session.get(Media, media_id)


def job_ids(db: Database, media_id: str) -> list[str]:
    with db.read() as session:
        return list(
            session.scalars(select(Job.id).where(Job.media_id == media_id).order_by(Job.created_at, Job.id))
        )


def unfinished_jobs(db: Database, media_id: str, *, excluding: str | None = None) -> list[Job]:
    with db.read() as session:
        query = select(Job).where(Job.media_id == media_id, Job.state.in_(job_states.UNFINISHED))
        if excluding:
            query = query.where(Job.id != excluding)
        return list(session.scalars(query))


def list_media(
    db: Database,
    *,
    state: str | None,
    limit: int,
    cursor: str | None,
    parent_id: str | None = None,
    q: str | None = None,
) -> Page:
    """Newest first; `q` keeps assets whose title holds it (any case; `%`, `_`, `*` are plain characters)."""
    query = select(Media)
    if state:
        query = query.where(Media.state == state)
    if parent_id:
        query = query.where(Media.parent_id == parent_id)
    if q and (needle := titles.search_key(q)):
        query = query.where(Media.title_search.contains(needle, autoescape=True))
    return newest_first(db, query, Media, limit=limit, cursor=cursor)


def rename(services: Services, media_id: str, title: str, *, only_if: str | None = None) -> bool:
    """Give an asset a title; with `only_if`, only while its title is still that one (a person's choice made
    meanwhile is never overwritten by a name the service found later)."""
    with services.db.write() as session:
        query = update(Media).where(Media.id == media_id, Media.state != DELETING)
        if only_if is not None:
            query = query.where(Media.title == only_if)
        values = {"title": title, "title_search": titles.search_key(title), "updated_at": utcnow()}
        return bool(session.execute(query.values(**values)).rowcount)  # type: ignore[attr-defined]


def update_media(
    services: Services,
    media_id: str,
    *,
    only_from: tuple[str, ...] | None = None,
    while_running: tuple[str, int] | None = None,
    **values: Any,
) -> bool:
    """Change an asset's fields; with `only_from`, only while it is in one of those states.

    `while_running` (job id, attempt): only while that attempt is the job's running one, so an attempt
    taken over by another (its host cut off, then back) changes nothing when it finally gets here. A move to
    ready or failed fires its event (`media/events.py`), which is why this takes the Services.
    """
    with services.db.write() as session:
        changed = update_media_in(
            session, media_id, only_from=only_from, while_running=while_running, **values
        )
    if changed:
        moved(services, media_id, values.get("state"))
    return changed


def update_media_in(
    session: Session,
    media_id: str,
    *,
    only_from: tuple[str, ...] | None = None,
    while_running: tuple[str, int] | None = None,
    **values: Any,
) -> bool:
    """`update_media` in the caller's transaction (one that commits other rows with it, such as the jobs that
    follow the change: `lifecycle.transaction`); once it has committed, the caller fires the move's event
    with `moved`."""
    values.setdefault("updated_at", utcnow())
    query = update(Media).where(Media.id == media_id)
    if only_from:
        query = query.where(Media.state.in_(only_from))
    if while_running:
        query = query.where(_running(*while_running))
    return bool(session.execute(query.values(**values)).rowcount)  # type: ignore[attr-defined]


def moved(services: Services, media_id: str, state: str | None) -> None:
    """An asset's change to `state` has committed: a move to ready or failed fires its event."""
    if state in (READY, FAILED):
        events.fire(events.MediaEvent(events.READY if state == READY else events.FAILED, media_id), services)


def _running(job_id: str, attempt: int) -> Any:
    return exists().where(Job.id == job_id, Job.attempt == attempt, Job.state == job_states.RUNNING)


def publish_early(
    db: Database, media_id: str, hls: dict[str, Any], probe: dict[str, Any], *, job: tuple[str, int]
) -> bool:
    """A processing asset plays before its ladder is done: its `hls` shows, `playable_at` is set once.

    Only while it is processing: a reprocess keeps the version it has until the new one is whole. A retried
    first processing publishes its own version over the one its failed attempt had published.
    """
    with db.write() as session:
        now = utcnow()
        moved = session.execute(
            update(Media)
            .where(Media.id == media_id, Media.state == PROCESSING, _running(*job))
            .values(hls=hls, probe=probe, playable_at=func.coalesce(Media.playable_at, now), updated_at=now)
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]


def delete_record(db: Database, media_id: str) -> None:
    with db.write() as session:
        session.execute(delete(MediaChunk).where(MediaChunk.media_id == media_id))
        session.execute(delete(MediaCaption).where(MediaCaption.media_id == media_id))
        session.execute(delete(Media).where(Media.id == media_id))
