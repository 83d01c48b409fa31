"""/api/v1/media: upload, import, look at, list and delete assets (files and operations: their own routes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mediajobs.api import idempotency, urls
from mediajobs.api.deps import DbDep, SettingsDep
from mediajobs.api.idempotency import IdempotencyHeader
from mediajobs.api.media_answers import media_answer, media_answers
from mediajobs.api.openapi import HTTP_URL, link, problem, problems, success
from mediajobs.api.problems import invalid
from mediajobs.api.schemas import MediaAccepted, MediaDeleting, MediaPage
from mediajobs.api.submissions import accepted, record_and_publish
from mediajobs.api.uploads import media_type, store_upload, upload_digest
from mediajobs.db.models import Job, Media
from mediajobs.db.session import Database
from mediajobs.errors import Conflict, InvalidParams
from mediajobs.jobs import lifecycle
from mediajobs.jobs.schemas import public as job_public
from mediajobs.media import assets, titles, uploads
from mediajobs.media.operations import ProcessParams
from mediajobs.media.schemas import MediaPublic

router = APIRouter(prefix="/api/v1/media", tags=["media"])
# Where an answer with a new asset leads: the asset, its operations, its job.
MEDIA_LINKS = link(
    "get_media",
    "delete_media",
    "mask",
    "remove_frames",
    "analyze",
    "reprocess",
    media_id="$response.body#/media/id",
) | link("get_job", job_id="$response.body#/job/id")


def _public(request: Request, db: Database, media: Media) -> dict[str, Any]:
    return media_answers(request, db, [media])[0]


class ImportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The pattern documents the scheme check (egress/urlcheck) for clients; it is not what enforces it.
    url: str = Field(min_length=1, max_length=4096, json_schema_extra={"pattern": HTTP_URL})
    pipeline: assets.Pipeline | None = None


@router.post(
    "/imports",
    status_code=202,
    response_model=None,
    responses=success(
        202,
        "the new asset and its import job",
        MediaAccepted,
        located=True,
        links=MEDIA_LINKS,
        headers=urls.DOCUMENTED,
    )
    | problem(422, "a URL that may not be imported (scheme, port, private address) or a bad pipeline"),
)
def import_media(
    body: ImportCreate,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    idem = idempotency.use(request, idempotency_key, body.model_dump(mode="json"))
    if (replayed := idempotency.replay(db, idem)) is not None:
        return replayed
    _, headers = urls.checked_url(body.url, settings, later="the import checks it again when it runs")
    media = assets.new_media(
        source={"type": "url", "url": body.url}, title=titles.from_url(body.url), pipeline=body.pipeline
    )
    response = _accept_new(request, db, media, "media.import", {"url": body.url}, idem)
    response.headers.update(headers)
    return response


def _accept_new(
    request: Request,
    db: Database,
    media: Media,
    kind: str,
    params: dict[str, Any],
    idem: idempotency.Use,
) -> JSONResponse:
    """Record a new asset with the job that works on it; 202 with both, located at the asset."""
    return accepted(
        request,
        db,
        kind=kind,
        params=params,
        media_id=media.id,
        idem=idem,
        media=media,
        answer=lambda job: {"media": media_answer(request, media, [job.id]), "job": job_public(job)},
        location=f"/api/v1/media/{media.id}",
    )


@router.post(
    "/uploads",
    status_code=202,
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the file's bytes (any video or audio type), or a form with a `file` field",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
    responses=success(
        202, "the new asset, stored, and its processing job", MediaAccepted, located=True, links=MEDIA_LINKS
    )
    | problem(400, "a malformed multipart/form-data body")
    | problem(413, "the upload is over MEDIAJOBS_MAX_UPLOAD_BYTES")
    | problem(415, "the file is not a video or audio file (a text file, a picture, an archive, ...)")
    | problem(422, "an empty upload, a form without a `file` field, or a bad pipeline"),
)
async def upload_media(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    filename: str | None = None,
    pipeline: str | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    idem = idempotency.use(request, idempotency_key, None)
    if await run_in_threadpool(idempotency.recorded, db, idem):
        # A repeat (or a reuse): the file it sends decides which, so it is read, and stored nowhere.
        sha256, name = await upload_digest(request, max_bytes=settings.max_upload_bytes, filename=filename)
        idem = idem.with_payload({"filename": name, "pipeline": pipeline, "sha256": sha256})
        if (replayed := await run_in_threadpool(idempotency.replay, db, idem)) is not None:
            return replayed
    params = _process_params(pipeline)
    media = assets.new_media(source={"type": "upload"}, state=assets.PROCESSING, pipeline=params.pipeline)
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
        "content_type": media_type(stored.content_type, stored.key),
        "filename": stored.filename or None,
        "key": stored.key,
    }
    media.source = {"type": "upload", "filename": stored.filename or None}
    idem = idem.with_payload({"filename": stored.filename, "pipeline": pipeline, "sha256": stored.sha256})
    media.title = titles.from_filename(stored.filename)
    media.title_search = titles.search_key(media.title)
    process = {"pipeline": params.pipeline}
    return await run_in_threadpool(lambda: _accept_new(request, db, media, "media.process", process, idem))


def _process_params(pipeline: str | None) -> ProcessParams:
    """The processing an upload asks for in `?pipeline=hls,thumbnail`, checked before a byte is stored."""
    if pipeline is None:
        return ProcessParams()
    try:
        params = ProcessParams.model_validate({"pipeline": [step for step in pipeline.split(",") if step]})
    except ValidationError as exc:
        raise invalid(["pipeline"], f"steps must be among {', '.join(assets.PIPELINE_STEPS)}") from exc
    try:
        assets.check_pipeline(params.pipeline)
    except InvalidParams as exc:
        raise invalid(["pipeline"], str(exc)) from exc
    return params


@router.get(
    "",
    response_model=None,
    responses=success(200, "newest first", MediaPage) | problem(422, "a bad filter, limit or cursor"),
)
def list_media(
    request: Request,
    db: DbDep,
    state: str | None = None,
    parent_id: str | None = None,
    q: Annotated[
        str | None,
        Query(
            max_length=titles.MAX_LENGTH,
            description="assets whose title holds this text, in any case (every character matches itself)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    if state is not None and state not in assets.STATES:
        raise invalid(["state"], f"unknown state {state!r}; one of {', '.join(assets.STATES)}")
    try:
        page = assets.list_media(db, state=state, limit=limit, cursor=cursor, parent_id=parent_id, q=q)
    except ValueError as exc:
        raise invalid(["cursor"], str(exc)) from exc
    return {"items": media_answers(request, db, list(page.items)), "next_cursor": page.next_cursor}


@router.get(
    "/{media_id}", response_model=None, responses=success(200, "the asset", MediaPublic) | problems(404)
)
def get_media(media_id: str, request: Request, db: DbDep) -> dict[str, Any]:
    return _public(request, db, assets.get_media(db, media_id))


class MediaUpdate(BaseModel):
    """What a person may change about an asset."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(
        description=f"plain text, 1 to {titles.MAX_LENGTH} characters once white space and control "
        "characters are tidied away",
        json_schema_extra={"minLength": 1, "maxLength": titles.MAX_LENGTH},
    )


@router.patch(
    "/{media_id}",
    response_model=None,
    responses=success(200, "the asset, renamed", MediaPublic)
    | problems(404)
    | problem(409, "the asset is being deleted")
    | problem(422, "a title that is not a string, empty, or longer than 200 characters"),
)
def update_media(media_id: str, body: MediaUpdate, request: Request, db: DbDep) -> dict[str, Any]:
    try:
        title = titles.chosen(body.title)
    except titles.InvalidTitle as exc:
        raise invalid(["title"], str(exc)) from exc
    media = assets.get_media(db, media_id)
    if not assets.rename(request.app.state.services, media.id, title):
        raise Conflict(f"media {media.id} is being deleted")
    return _public(request, db, assets.get_media(db, media.id))


@router.delete(
    "/{media_id}",
    status_code=202,
    response_model=None,
    responses=success(202, "being removed: its jobs cancelled, then its files and record", MediaDeleting)
    | problems(404),
)
def delete_media(media_id: str, request: Request, db: DbDep) -> JSONResponse:
    media = assets.get_media(db, media_id)
    services = request.app.state.services
    if media.state != assets.DELETING:
        assets.update_media(services, media.id, state=assets.DELETING)
        uploads.end_for_media(db, media.id)  # its unfinished upload, if any, takes no more bytes
        for pending in assets.unfinished_jobs(db, media.id):
            lifecycle.cancel(services, pending.id)
        job: Job | None = record_and_publish(
            request, db, media=None, kind="media.delete", params={}, media_id=media.id
        )
    else:
        job = next(iter(assets.unfinished_jobs(db, media.id)), None)
    media = assets.find_media(db, media.id) or media
    return JSONResponse(
        {"media": _public(request, db, media), "job": job_public(job) if job else None}, status_code=202
    )
