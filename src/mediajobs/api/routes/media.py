"""/api/v1/media: upload, import, look at, list, delete assets, serve their files, run operations on them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mediajobs.api import idempotency
from mediajobs.api.deps import DbDep, SettingsDep
from mediajobs.api.problems import invalid
from mediajobs.api.routes.jobs import params_problem
from mediajobs.api.uploads import store_upload
from mediajobs.broker import broker_for
from mediajobs.db.models import Job
from mediajobs.db.session import Database
from mediajobs.egress.policy import Policy
from mediajobs.errors import ForbiddenAddress, InvalidUrl, SourceUnreachable, TransientError
from mediajobs.jobs import lifecycle
from mediajobs.jobs.lifecycle import ParamsRejected
from mediajobs.jobs.schemas import public as job_public
from mediajobs.media import assets, playback
from mediajobs.media.urlguard import check_url
from mediajobs.storage import content_type_for

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
    return media_answer(request, media, _jobs_by_media(db, [media.id])[media.id])


def record_and_publish(
    request: Request,
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

    def with_job(session: Session, job: Job) -> None:
        if media is not None:
            session.add(media)
        if answer is not None:
            session.flush()
            where = location or f"/api/v1/jobs/{job.id}"
            idempotency.remember(session, scope or "", key, status=202, body=answer(job), location=where)

    broker = broker_for(request.app.state.settings)
    try:
        return lifecycle.submit(db, broker, kind=kind, params=params, media_id=media_id, with_job=with_job)
    except ParamsRejected as exc:
        raise params_problem(exc) from exc


IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]


def replay_for(
    request: Request, db: Database, key: str | None
) -> tuple[str, str | None, JSONResponse | None]:
    """(scope, key, the first answer if this key was used on this URL within 24 h)."""
    scope, key = f"POST {request.url.path}", idempotency.check_key(key)
    return scope, key, idempotency.replay(db, scope, key)


def job_answer(
    request: Request,
    db: Database,
    *,
    kind: str,
    params: dict[str, Any],
    media_id: str,
    scope: str,
    key: str | None,
) -> JSONResponse:
    answer = lambda job: {"job": job_public(job)}  # noqa: E731
    job = record_and_publish(
        request,
        db,
        media=None,
        kind=kind,
        params=params,
        media_id=media_id,
        scope=scope,
        key=key,
        answer=answer,
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
        check_url(body.url, policy=Policy.from_settings(settings))
    except (InvalidUrl, ForbiddenAddress) as exc:
        raise invalid(["url"], str(exc)) from exc
    except (SourceUnreachable, TransientError):
        pass  # DNS may recover; the import job checks again and fails with a specific code if not
    media = assets.new_media(source={"type": "url", "url": body.url}, pipeline=body.pipeline)
    answer = lambda job: {"media": media_answer(request, media, [job.id]), "job": job_public(job)}  # noqa: E731
    job = record_and_publish(
        request,
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


def media_answer(request: Request, media: Any, jobs: list[str]) -> dict[str, Any]:
    """The asset's JSON; with auth on its file URLs carry a playback token for this asset."""
    token = playback.sign(request.app.state.settings, media.id)
    return assets.public(media, jobs=jobs, base_url=str(request.base_url), token=token)


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
    answer = lambda job: {"media": media_answer(request, media, [job.id]), "job": job_public(job)}  # noqa: E731
    job = await run_in_threadpool(
        lambda: record_and_publish(
            request,
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
    return {
        "items": [media_answer(request, m, jobs[m.id]) for m in page.items],
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
            lifecycle.cancel(db, pending.id)
        job: Job | None = record_and_publish(
            request, db, media=None, kind="media.delete", params={}, media_id=media.id
        )
    else:
        job = next(iter(assets.unfinished_jobs(db, media.id)), None)
    media = assets.find_media(db, media.id) or media
    return JSONResponse(
        {"media": _public(request, db, media), "job": job_public(job) if job else None}, status_code=202
    )
