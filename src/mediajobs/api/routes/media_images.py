"""Images of an asset on request (a frame at any time, animated previews) and choosing its poster.

The API never runs ffmpeg: the first request for a set of parameters records a `media.image` job (a quick
one, on the `default` queue) and waits for it, at most RENDER_WAIT_S; the picture is stored, and every later
request for the same parameters is a storage look-up and the stored file.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mediajobs.api.deps import DbDep, SettingsDep
from mediajobs.api.media_answers import media_answers
from mediajobs.api.openapi import file_responses, problem, problems, retrying, success
from mediajobs.api.problems import Problem, invalid
from mediajobs.api.routes.media_files import answer_file
from mediajobs.api.schemas import JobAccepted, MediaPublic
from mediajobs.api.submissions import record_and_publish
from mediajobs.config import Settings
from mediajobs.db.models import Job, Media
from mediajobs.db.session import Database
from mediajobs.errors import InvalidField
from mediajobs.jobs import states as job_states
from mediajobs.jobs.schemas import public as job_public
from mediajobs.media import assets, images
from mediajobs.storage import Storage
from mediajobs.toolkit.stills import CONTENT_TYPES, Animation, Fit, Still

router = APIRouter(prefix="/api/v1/media", tags=["media images"])
RENDER_WAIT_S = 30.0
# A render still running when the wait ends: ask again shortly (the same render is waited for, not redone).
STILL_RENDERING_RETRY_S = 2
IMAGE_ERRORS = (
    problems(404)
    | retrying(409, "the asset is not ready (then with `Retry-After`), or has no video to take images of")
    | problem(422, "a parameter out of range; `errors` names it")
    | problem(429, "the asset has had MEDIAJOBS_MAX_IMAGE_RENDERS renders; reuse rendered parameters")
    | retrying(503, "the render is still running, or failed; ask again after `Retry-After`")
)
Seconds = Annotated[float, Query(ge=0, allow_inf_nan=False, description="seconds from the start")]


@router.get(
    "/{media_id}/images/thumbnail.{format}",
    response_model=None,
    responses=file_responses(sorted({CONTENT_TYPES[f] for f in ("jpg", "png", "webp")})) | IMAGE_ERRORS,
)
async def get_thumbnail(
    media_id: str,
    format: Annotated[Still, Path(description="jpg, png or webp")],
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    time: Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="default: the poster")] = None,
    width: Annotated[int | None, Query(ge=1, le=images.MAX_SIDE)] = None,
    height: Annotated[int | None, Query(ge=1, le=images.MAX_SIDE)] = None,
    fit_mode: Fit = "preserve",
) -> Response:
    """The frame shown at `time`, scaled to fit `width` x `height` (preserve), fill it (crop) or pad to it."""
    media = await run_in_threadpool(assets.get_media, db, media_id)
    version = _renderable(media)
    try:
        spec = images.still(media, time=time, width=width, height=height, fit=fit_mode, fmt=format)
    except InvalidField as exc:
        raise invalid([exc.field], exc.detail) from exc
    params = images.ImageParams(version=version, still=spec)
    return await _render_or_serve(request, db, settings, media, params)


@router.get(
    "/{media_id}/images/animated.{format}",
    response_model=None,
    responses=file_responses(sorted({CONTENT_TYPES[f] for f in ("gif", "webp")})) | IMAGE_ERRORS,
)
async def get_animated(
    media_id: str,
    format: Annotated[Animation, Path(description="gif or webp")],
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    start: Seconds = 0.0,
    end: Annotated[float | None, Query(gt=0, allow_inf_nan=False, description="default: start + 5 s")] = None,
    width: Annotated[int, Query(ge=1, le=images.MAX_ANIMATED_WIDTH)] = 320,
    fps: Annotated[int, Query(ge=1, le=images.MAX_FPS)] = 10,
) -> Response:
    """A looping animation of [start, end) (at most 10 s), `fps` frames a second, `width` wide."""
    media = await run_in_threadpool(assets.get_media, db, media_id)
    version = _renderable(media)
    try:
        spec = images.animated(media, start=start, end=end, width=width, fps=fps, fmt=format)
    except InvalidField as exc:
        raise invalid([exc.field], exc.detail) from exc
    params = images.ImageParams(version=version, animated=spec)
    return await _render_or_serve(request, db, settings, media, params)


class PosterSet(BaseModel):
    """The time of the frame to show as the asset's thumbnail."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    time: float = Field(ge=0)


@router.put(
    "/{media_id}/poster",
    response_model=None,
    responses=success(200, "the asset, its thumbnail_url now the frame at `time`", MediaPublic)
    | success(202, "the poster is still being rendered; the job sets it", JobAccepted, located=True)
    | {k: v for k, v in IMAGE_ERRORS.items() if k != 503},
)
async def set_poster(
    media_id: str, body: PosterSet, request: Request, db: DbDep, settings: SettingsDep
) -> JSONResponse:
    media = await run_in_threadpool(assets.get_media, db, media_id)
    version = _renderable(media)
    try:
        spec = images.poster(media, time=body.time)
    except InvalidField as exc:
        raise invalid([exc.field], exc.detail) from exc
    params = images.ImageParams(version=version, still=spec, poster=True)
    job = await _render(request, db, settings, media, params)
    if job.state != job_states.SUCCEEDED:
        return JSONResponse(
            {"job": job_public(job)}, status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"}
        )
    media = await run_in_threadpool(assets.get_media, db, media_id)
    return JSONResponse((await run_in_threadpool(media_answers, request, db, [media]))[0])


def _renderable(media: Media) -> str:
    try:
        return images.renderable(media)
    except images.NotReady as exc:
        retry = {"Retry-After": str(images.NOT_READY_RETRY_S)}
        raise Problem(409, str(exc), slug="not-ready", headers=retry) from exc


async def _render_or_serve(
    request: Request, db: Database, settings: Settings, media: Media, params: images.ImageParams
) -> Response:
    storage: Storage = request.app.state.storage()
    key = assets.prefix(media.id) + params.path
    info = await run_in_threadpool(storage.stat, key)
    if info is None:
        job = await _render(request, db, settings, media, params)
        if job.state != job_states.SUCCEEDED:
            retry = {"Retry-After": str(STILL_RENDERING_RETRY_S)}
            detail = "the image is still being rendered; ask again"
            raise Problem(503, detail, slug="rendering", headers=retry)
        info = await run_in_threadpool(storage.stat, key)
        if info is None:
            raise Problem(409, "the image was rendered for a version of the asset since replaced; ask again")
    return await run_in_threadpool(answer_file, request, settings, storage, media.id, key, params.path, info)


async def _render(
    request: Request, db: Database, settings: Settings, media: Media, params: images.ImageParams
) -> Job:
    """The render's job once it has ended, or still running after RENDER_WAIT_S; a failure is a problem."""
    wanted = params.model_dump(mode="json")
    job = await run_in_threadpool(images.in_flight, db, media.id, wanted)
    if job is None:
        if not await run_in_threadpool(images.reserve, db, media.id, settings.max_image_renders):
            raise Problem(
                429,
                f"media {media.id} has had its {settings.max_image_renders} image renders "
                "(MEDIAJOBS_MAX_IMAGE_RENDERS); parameters already rendered are still served",
                slug="too-many-renders",
            )
        job = await run_in_threadpool(
            lambda: record_and_publish(
                request, db, media=None, kind=images.KIND, params=wanted, media_id=media.id
            )
        )
    deadline = time.monotonic() + RENDER_WAIT_S
    pause = 0.01
    while job.state not in job_states.TERMINAL and time.monotonic() < deadline:
        await asyncio.sleep(pause)
        pause = min(0.1, pause * 1.5)
        found = await run_in_threadpool(_job, db, job.id)
        job = found or job
    if job.state in (job_states.FAILED, job_states.CANCELLED):
        raise _failed(job)
    return job


def _job(db: Database, job_id: str) -> Job | None:
    with db.read() as session:
        return session.get(Job, job_id)


def _failed(job: Job) -> Problem:
    error: dict[str, Any] = job.error or {}
    code, message = error.get("code", "internal"), error.get("message", "the render failed")
    if code in ("not_found", "superseded"):
        return Problem(409, f"the asset changed while rendering ({message}); ask again", slug="conflict")
    if code in ("unsupported_media", "no_video"):
        return Problem(422, f"nothing to render: {message}", slug=code)
    retry = {"Retry-After": str(STILL_RENDERING_RETRY_S)}
    detail = f"the render failed ({code}: {message}); ask again"
    return Problem(503, detail, slug="render-failed", headers=retry)
