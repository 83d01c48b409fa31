"""/api/v1/media: upload, import, look at, list, delete assets, serve their files, run operations on them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from mediajobs.api import idempotency
from mediajobs.api.deps import DbDep, SettingsDep
from mediajobs.api.problems import Problem, field_error, invalid
from mediajobs.api.uploads import store_upload
from mediajobs.db.models import Job
from mediajobs.db.session import Database
from mediajobs.errors import ForbiddenAddress, InvalidParams, InvalidUrl, SourceUnreachable, TransientError
from mediajobs.jobs import service
from mediajobs.jobs.dispatch import Message, publisher_for
from mediajobs.jobs.lifecycle import run_end_hook
from mediajobs.jobs.registry import registry
from mediajobs.jobs.schemas import public as job_public
from mediajobs.media import assets
from mediajobs.media.cut import merge_ranges
from mediajobs.media.mask import Region, clip_regions
from mediajobs.media.urlguard import check_url
from mediajobs.storage import InvalidKey, InvalidRange, ObjectNotFound, content_type_for, join_key

router = APIRouter(prefix="/api/v1/media", tags=["media"])
Step = Literal["hls", "thumbnail"]


def _jobs_by_media(db: Database, ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        with db.read() as session:
            for media_id, job_id in session.execute(
                select(Job.media_id, Job.id).where(Job.media_id.in_(ids)).order_by(Job.created_at, Job.id)
            ):
                found[str(media_id)].append(job_id)
    return found


def _public(request: Request, db: Database, media: Any) -> dict[str, Any]:
    return assets.public(media, jobs=_jobs_by_media(db, [media.id])[media.id], base_url=str(request.base_url))


def _create(
    db: Database,
    *,
    media: Any | None,
    kind: str,
    params: dict[str, Any],
    media_id: str,
    scope: str | None = None,
    key: str | None = None,
    answer: Any = None,
    location: str | None = None,
) -> Any:
    """Record (asset and) job in one transaction with the idempotency key's answer, then publish the job."""
    job = service.new_job(kind=registry.get(kind), params=params, media_id=media_id)
    with db.write() as session:
        if media is not None:
            session.add(media)
        session.add(job)
        if answer is not None:
            session.flush()
            idempotency.remember(
                session,
                scope or "",
                key,
                status=202,
                body=answer(job),
                location=location or f"/api/v1/jobs/{job.id}",
            )
    publisher_for(db).submit(Message.of(job))
    return job


IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]


def _replay(request: Request, db: Database, key: str | None) -> tuple[str, str | None, JSONResponse | None]:
    """(scope, key, the first answer if this key was used on this URL within 24 h)."""
    scope, key = f"POST {request.url.path}", idempotency.check_key(key)
    return scope, key, idempotency.replay(db, scope, key)


def _job_answer(
    db: Database, *, kind: str, params: dict[str, Any], media_id: str, scope: str, key: str | None
) -> JSONResponse:
    answer = lambda job: {"job": job_public(job)}  # noqa: E731
    job = _create(
        db, media=None, kind=kind, params=params, media_id=media_id, scope=scope, key=key, answer=answer
    )
    return JSONResponse(answer(job), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


class ImportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=4096)
    pipeline: list[Step] | None = None


@router.post("/imports", status_code=202)
def import_media(
    body: ImportCreate,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    scope, key = "POST /api/v1/media/imports", idempotency.check_key(idempotency_key)
    if (replayed := idempotency.replay(db, scope, key)) is not None:
        return replayed
    try:
        check_url(body.url, allow_private=settings.import_allow_private)
    except (InvalidUrl, ForbiddenAddress) as exc:
        raise invalid(["url"], str(exc)) from exc
    except (SourceUnreachable, TransientError):
        pass  # DNS may recover; the import job checks again and fails with a specific code if not
    media = assets.new_media(source={"type": "url", "url": body.url}, pipeline=body.pipeline)
    answer = lambda job: {"media": _answer_media(request, media, [job.id]), "job": job_public(job)}  # noqa: E731
    job = _create(
        db,
        media=media,
        kind="media.import",
        params={"url": body.url},
        media_id=media.id,
        scope=scope,
        key=key,
        answer=answer,
        location=f"/api/v1/media/{media.id}",
    )
    return JSONResponse(answer(job), status_code=202, headers={"Location": f"/api/v1/media/{media.id}"})


def _answer_media(request: Request, media: Any, jobs: list[str]) -> dict[str, Any]:
    return assets.public(media, jobs=jobs, base_url=str(request.base_url))


@router.post("/uploads", status_code=202)
async def upload_media(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    filename: str | None = None,
    pipeline: str | None = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    scope, key = "POST /api/v1/media/uploads", idempotency.check_key(idempotency_key)
    if (replayed := await run_in_threadpool(idempotency.replay, db, scope, key)) is not None:
        return replayed
    steps = assets.DEFAULT_PIPELINE if pipeline is None else [s for s in pipeline.split(",") if s]
    if any(step not in assets.PIPELINE_STEPS for step in steps):
        raise invalid(["pipeline"], f"steps must be among {', '.join(assets.PIPELINE_STEPS)}")
    media = assets.new_media(source={"type": "upload"}, state=assets.PROCESSING, pipeline=steps)
    storage = request.app.state.storage()
    stored = await store_upload(
        request,
        storage,
        max_bytes=settings.max_upload_bytes,
        filename=filename,
        key_for=lambda name: assets.original_key(media.id, assets.safe_filename(name)),
    )
    media.original = {
        "size": stored.size,
        "content_type": _media_type(stored.content_type, stored.key),
        "filename": stored.filename or None,
        "key": stored.key,
    }
    media.source = {"type": "upload", "filename": stored.filename or None}
    answer = lambda job: {"media": _answer_media(request, media, [job.id]), "job": job_public(job)}  # noqa: E731
    job = await run_in_threadpool(
        lambda: _create(
            db,
            media=media,
            kind="media.process",
            params={"pipeline": steps},
            media_id=media.id,
            scope=scope,
            key=key,
            answer=answer,
            location=f"/api/v1/media/{media.id}",
        )
    )
    return JSONResponse(answer(job), status_code=202, headers={"Location": f"/api/v1/media/{media.id}"})


# What clients send when they do not know (curl --data-binary sends a form type): the name says more.
GENERIC_TYPES = ("", "application/octet-stream", "application/x-www-form-urlencoded", "multipart/form-data")


def _media_type(sent: str | None, key: str) -> str:
    sent = (sent or "").split(";")[0].strip().lower()
    return content_type_for(key) if sent in GENERIC_TYPES else sent


@router.get("")
def list_media(
    request: Request,
    db: DbDep,
    state: str | None = None,
    parent_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    if state is not None and state not in assets.STATES:
        raise invalid(["state"], f"unknown state {state!r}; one of {', '.join(assets.STATES)}")
    try:
        page = assets.list_media(db, state=state, limit=limit, cursor=cursor, parent_id=parent_id)
    except ValueError as exc:
        raise invalid(["cursor"], str(exc)) from exc
    jobs = _jobs_by_media(db, [m.id for m in page.items])
    base = str(request.base_url)
    return {
        "items": [assets.public(m, jobs=jobs[m.id], base_url=base) for m in page.items],
        "next_cursor": page.next_cursor,
    }


@router.get("/{media_id}")
def get_media(media_id: str, request: Request, db: DbDep) -> dict[str, Any]:
    return _public(request, db, assets.get_media(db, media_id))


@router.delete("/{media_id}", status_code=202)
def delete_media(media_id: str, request: Request, db: DbDep) -> JSONResponse:
    media = assets.get_media(db, media_id)
    if media.state != assets.DELETING:
        assets.update_media(db, media.id, state=assets.DELETING)
        for pending in assets.unfinished_jobs(db, media.id):
            cancelled, changed = service.request_cancel(db, pending.id)
            if changed and cancelled.state == "cancelled":
                run_end_hook(cancelled)
        job: Job | None = _create(db, media=None, kind="media.delete", params={}, media_id=media.id)
    else:
        job = next(iter(assets.unfinished_jobs(db, media.id)), None)
    media = assets.find_media(db, media.id) or media
    return JSONResponse(
        {"media": _public(request, db, media), "job": job_public(job) if job else None}, status_code=202
    )


PLAYLIST = "application/vnd.apple.mpegurl"


@router.get("/{media_id}/files/{path:path}")
def get_file(media_id: str, path: str, request: Request, db: DbDep) -> Response:
    media = assets.get_media(db, media_id)
    try:
        key = join_key(assets.prefix(media.id), path)
    except InvalidKey as exc:
        raise Problem(404, f"no file {path!r} in media {media.id}", slug="not-found") from exc
    storage = request.app.state.storage()
    info = storage.stat(key)
    if info is None:
        raise Problem(404, f"no file {path!r} in media {media.id}", slug="not-found")
    if key.endswith(".m3u8"):
        # Playlists come from the API so their relative segment URIs resolve here (and can be redirected).
        return Response(storage.read_bytes(key), media_type=PLAYLIST, headers={"Cache-Control": "no-cache"})
    if (signed := storage.signed_url(key)) is not None:
        return RedirectResponse(signed, status_code=307)
    return _stream(storage, key, info.size, info.content_type, request.headers.get("range"))


def _stream(
    storage: Any, key: str, size: int, content_type: str | None, range_header: str | None
) -> Response:
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "public, max-age=3600"}
    media_type = content_type or "application/octet-stream"
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (range_header or "").strip())
    if match and (match[1] or match[2]):
        start = int(match[1]) if match[1] else max(0, size - int(match[2]))
        end = int(match[2]) if match[1] and match[2] else size - 1
        try:
            stream = storage.open_reader(key, start=start, end=min(end, size - 1))
        except (InvalidRange, ObjectNotFound) as exc:
            return (
                Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
                if isinstance(exc, InvalidRange)
                else Response(status_code=404)
            )
        end = min(end, size - 1)
        headers.update(
            {"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)}
        )
        return StreamingResponse(stream, status_code=206, media_type=media_type, headers=headers)
    headers["Content-Length"] = str(size)
    return StreamingResponse(storage.open_reader(key), media_type=media_type, headers=headers)


class RegionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)
    start: float = Field(default=0.0, ge=0)
    end: float | None = Field(default=None, ge=0)
    style: Literal["blur", "black", "pixelate"] = "blur"

    @model_validator(mode="after")
    def _times(self) -> RegionIn:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start (or null for 'until the end')")
        return self


class MaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regions: list[RegionIn] = Field(min_length=1, max_length=200)
    pipeline: list[Step] | None = None


class RangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @model_validator(mode="after")
    def _order(self) -> RangeIn:
        if self.end <= self.start:
            raise ValueError("end must be after start (ranges are [start, end) in seconds)")
        return self


class RemoveFramesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ranges: list[RangeIn] = Field(min_length=1, max_length=1000)
    pipeline: list[Step] | None = None


class ReprocessCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline: list[Step] | None = None


def _ready_source(db: Database, media_id: str) -> Any:
    media = assets.get_media(db, media_id)
    if media.state != assets.READY:
        raise Problem(
            409, f"media {media.id} is {media.state}; operations need a ready asset", slug="conflict"
        )
    if not media.probe:
        raise Problem(409, f"media {media.id} has no probe data; reprocess it first", slug="conflict")
    return media


def _param_problem(exc: InvalidParams, field: str) -> Problem:
    found = re.search(rf"{field}\[(\d+)\]", str(exc))
    loc: list[str | int] = [field, int(found[1])] if found else [field]
    return Problem(422, str(exc), errors=[field_error(loc, str(exc))], slug="validation")


def _derive(
    request: Request,
    db: Database,
    source: Any,
    *,
    kind: str,
    params: dict[str, Any],
    pipeline: Sequence[str] | None,
    description: dict[str, Any],
    scope: str,
    key: str | None,
) -> JSONResponse:
    derived = assets.new_media(
        source={"parent_id": source.id, **description}, parent_id=source.id, pipeline=pipeline
    )
    answer = lambda job: {"job": job_public(job), "media": _answer_media(request, derived, [job.id])}  # noqa: E731
    job = _create(
        db,
        media=derived,
        kind=kind,
        params={"source_id": source.id, **params},
        media_id=derived.id,
        scope=scope,
        key=key,
        answer=answer,
    )
    return JSONResponse(answer(job), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.post("/{media_id}/mask", status_code=202)
def mask(
    media_id: str, body: MaskCreate, request: Request, db: DbDep, idempotency_key: IdempotencyHeader = None
) -> JSONResponse:
    scope, key, replayed = _replay(request, db, idempotency_key)
    if replayed is not None:
        return replayed
    source = _ready_source(db, media_id)
    probe = source.probe
    if not probe.get("width") or not probe.get("height"):
        raise Problem(409, f"media {source.id} has no video to mask", slug="conflict")
    regions = [Region(**r.model_dump()) for r in body.regions]
    try:
        clip_regions(regions, probe["width"], probe["height"], probe["duration"])
    except InvalidParams as exc:
        raise _param_problem(exc, "regions") from exc
    regions_json = [r.model_dump() for r in body.regions]
    return _derive(
        request,
        db,
        source,
        kind="media.mask",
        params={"regions": regions_json},
        pipeline=body.pipeline,
        description={"type": "mask", "regions": regions_json},
        scope=scope,
        key=key,
    )


@router.post("/{media_id}/remove-frames", status_code=202)
def remove_frames(
    media_id: str,
    body: RemoveFramesCreate,
    request: Request,
    db: DbDep,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    scope, key, replayed = _replay(request, db, idempotency_key)
    if replayed is not None:
        return replayed
    source = _ready_source(db, media_id)
    ranges = [(r.start, r.end) for r in body.ranges]
    try:
        merge_ranges(ranges, source.probe["duration"], fps=source.probe.get("fps"))
    except InvalidParams as exc:
        raise _param_problem(exc, "ranges") from exc
    ranges_json = [r.model_dump() for r in body.ranges]
    return _derive(
        request,
        db,
        source,
        kind="media.remove_frames",
        params={"ranges": ranges_json},
        pipeline=body.pipeline,
        description={"type": "remove_frames", "ranges": ranges_json},
        scope=scope,
        key=key,
    )


@router.post("/{media_id}/analyze", status_code=202)
def analyze(
    media_id: str, request: Request, db: DbDep, idempotency_key: IdempotencyHeader = None
) -> JSONResponse:
    scope, key, replayed = _replay(request, db, idempotency_key)
    if replayed is not None:
        return replayed
    source = _ready_source(db, media_id)
    return _job_answer(db, kind="media.analyze", params={}, media_id=source.id, scope=scope, key=key)


@router.post("/{media_id}/reprocess", status_code=202)
def reprocess(
    media_id: str,
    request: Request,
    db: DbDep,
    body: ReprocessCreate | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    scope, key, replayed = _replay(request, db, idempotency_key)
    if replayed is not None:
        return replayed
    source = _ready_source(db, media_id)
    steps = (
        (body.pipeline if body and body.pipeline is not None else None)
        or source.pipeline
        or assets.DEFAULT_PIPELINE
    )
    return _job_answer(
        db,
        kind="media.process",
        params={"pipeline": steps, "reprocess": True},
        media_id=source.id,
        scope=scope,
        key=key,
    )
