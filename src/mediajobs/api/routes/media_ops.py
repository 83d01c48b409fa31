"""Operations on a ready asset: mask, remove frames, clip (each makes a derived asset), analyze, reprocess.

The bodies are the operations' job params (`media/operations.py`); the checks against the source live there
too, so a route only records the work and answers.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mediajobs.api import idempotency
from mediajobs.api.deps import DbDep
from mediajobs.api.idempotency import IdempotencyHeader
from mediajobs.api.media_answers import media_answer
from mediajobs.api.openapi import link, problem, problems, success
from mediajobs.api.problems import invalid, item_problem
from mediajobs.api.schemas import JobAccepted
from mediajobs.api.submissions import accepted
from mediajobs.db.models import Job
from mediajobs.db.session import Database
from mediajobs.errors import InvalidField, InvalidParams
from mediajobs.jobs.schemas import public as job_public
from mediajobs.media import downloads, operations
from mediajobs.media.operations import ClipCreate, Derivation, MaskCreate, RemoveFramesCreate, ReprocessCreate
from mediajobs.toolkit.clip import InvalidClip
from mediajobs.toolkit.sound import InvalidSound

router = APIRouter(prefix="/api/v1/media", tags=["media operations"])
# What every operation answers besides 202 (the Guard's and the handlers' statuses are added for all routes).
NOT_READY = problems(404) | problem(
    409, "the asset is not ready (or has no probe data, no video to mask or no sound to edit)"
)
DERIVED_LINKS = link("get_job", job_id="$response.body#/job/id") | link(
    "get_media", media_id="$response.body#/media/id"
)
JOB_LINK = link("get_job", job_id="$response.body#/job/id")


def _derive(
    request: Request,
    db: Database,
    media_id: str,
    params: Derivation,
    idempotency_key: str | None,
) -> JSONResponse:
    """Record the derived asset and its job, whose params are the request body; 202 with both (the first
    answer again for a repeated Idempotency-Key and body)."""
    idem = idempotency.use(request, idempotency_key, params.model_dump(mode="json"))
    if (replayed := idempotency.replay(db, idem)) is not None:
        return replayed
    try:
        derived = operations.derive(db, media_id, params)
    except (InvalidClip, InvalidSound) as exc:
        loc = [int(part) if part.isdigit() else part for part in exc.field.split(".")]
        raise invalid(loc, str(exc)) from exc
    except InvalidParams as exc:
        raise item_problem(exc, getattr(params, "list_field", "body")) from exc

    def answer(job: Job) -> dict[str, Any]:
        return {"job": job_public(job), "media": media_answer(request, derived, [job.id])}

    return accepted(
        request,
        db,
        kind=params.kind,
        params=params.model_dump(mode="json"),
        media_id=derived.id,
        media=derived,
        answer=answer,
        idem=idem,
    )


@router.post(
    "/{media_id}/mask",
    status_code=202,
    response_model=None,
    responses=success(
        202, "the mask job and the new asset it makes", JobAccepted, located=True, links=DERIVED_LINKS
    )
    | NOT_READY
    | problem(422, "a region or audio range outside the frame or the duration, or a bad field"),
)
def mask(
    media_id: str, body: MaskCreate, request: Request, db: DbDep, idempotency_key: IdempotencyHeader = None
) -> JSONResponse:
    return _derive(request, db, media_id, body, idempotency_key)


@router.post(
    "/{media_id}/remove-frames",
    status_code=202,
    response_model=None,
    responses=success(
        202, "the cut job and the new asset it makes", JobAccepted, located=True, links=DERIVED_LINKS
    )
    | NOT_READY
    | problem(422, "ranges outside the duration, or that would remove everything, or a bad field"),
)
def remove_frames(
    media_id: str,
    body: RemoveFramesCreate,
    request: Request,
    db: DbDep,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    return _derive(request, db, media_id, body, idempotency_key)


class DownloadCreate(BaseModel):
    """Another progressive file of the asset: an MP4 of a rung of its ladder, or its audio (M4A)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["mp4", "audio"] = "mp4"
    height: int | None = Field(
        default=None, ge=1, description="the rung's height (hls.variants); default: top"
    )


@router.post(
    "/{media_id}/downloads",
    status_code=202,
    response_model=None,
    responses=success(202, "the job that makes the file; `downloads` lists it", JobAccepted, located=True)
    | NOT_READY
    | problem(422, "a height the ladder does not have, or a bad field"),
)
def create_download(
    media_id: str,
    body: DownloadCreate,
    request: Request,
    db: DbDep,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    idem = idempotency.use(request, idempotency_key, body.model_dump(mode="json"))
    if (replayed := idempotency.replay(db, idem)) is not None:
        return replayed
    source = operations.ready_source(db, media_id)
    try:
        made = downloads.requested(source, body.type, body.height)
    except InvalidField as exc:
        raise invalid([exc.field], exc.detail) from exc
    # Listed at once (not ready) unless it exists: a file made before stays served while it is made again.
    listed = lambda es: es if any(e["path"] == made["path"] for e in es) else downloads.replace(es, made)  # noqa: E731
    downloads.update(db, source.id, made["version"], listed)
    params = {"version": made["version"], "mp4_height": made["height"], "audio": made["type"] == "audio"}
    return accepted(request, db, kind="media.downloads", params=params, media_id=source.id, idem=idem)


@router.post(
    "/{media_id}/clip",
    status_code=202,
    response_model=None,
    responses=success(
        202, "the clip job and the new asset it makes", JobAccepted, located=True, links=DERIVED_LINKS
    )
    | NOT_READY
    | problem(
        422,
        "start or end outside the media, a clip shorter than one frame, a crop of sound only, or a bad field",
    ),
)
def clip(
    media_id: str,
    body: ClipCreate,
    request: Request,
    db: DbDep,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    return _derive(request, db, media_id, body, idempotency_key)


@router.post(
    "/{media_id}/analyze",
    status_code=202,
    response_model=None,
    responses=success(
        202, "the analysis job; its result holds the findings", JobAccepted, located=True, links=JOB_LINK
    )
    | NOT_READY,
)
def analyze(
    media_id: str, request: Request, db: DbDep, idempotency_key: IdempotencyHeader = None
) -> JSONResponse:
    idem = idempotency.use(request, idempotency_key, None)
    if (replayed := idempotency.replay(db, idem)) is not None:
        return replayed
    source = operations.ready_source(db, media_id)
    return accepted(request, db, kind="media.analyze", params={}, media_id=source.id, idem=idem)


@router.post(
    "/{media_id}/reprocess",
    status_code=202,
    response_model=None,
    responses=success(
        202, "the job that rebuilds the derived files", JobAccepted, located=True, links=JOB_LINK
    )
    | NOT_READY,
)
def reprocess(
    media_id: str,
    request: Request,
    db: DbDep,
    body: ReprocessCreate | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    idem = idempotency.use(request, idempotency_key, body.model_dump(mode="json") if body else None)
    if (replayed := idempotency.replay(db, idem)) is not None:
        return replayed
    source = operations.ready_source(db, media_id)
    try:
        params = operations.reprocess_params(source, body).model_dump(mode="json")
    except InvalidParams as exc:
        raise invalid(["pipeline"], str(exc)) from exc
    return accepted(request, db, kind="media.process", params=params, media_id=source.id, idem=idem)
