"""/api/v1/media/{id}/captions: an asset's caption tracks (SRT or WebVTT in; WebVTT and HLS subtitles out)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mediajobs.api import idempotency
from mediajobs.api.deps import DbDep, ServicesDep
from mediajobs.api.idempotency import IdempotencyHeader
from mediajobs.api.openapi import problem, problems, success
from mediajobs.api.problems import Problem, field_error, invalid
from mediajobs.db.models import MediaCaption
from mediajobs.db.session import Database
from mediajobs.errors import Conflict
from mediajobs.media import assets, captions, playback, schemas
from mediajobs.media.schemas import CaptionPublic
from mediajobs.toolkit import subtitles

router = APIRouter(prefix="/api/v1/media", tags=["captions"])
# A processing asset is ready soon: a client may try again after this many seconds.
RETRY_AFTER_S = 5


class CaptionPage(BaseModel):
    items: list[CaptionPublic]
    next_cursor: str | None = None


def _public(request: Request, caption: MediaCaption) -> dict[str, Any]:
    token = playback.sign(request.app.state.settings, caption.media_id)
    return schemas.caption_public(caption, base_url=str(request.base_url), token=token)


async def _body(request: Request) -> bytes:
    """The request body, refused with 413 past subtitles.MAX_BYTES without reading on."""
    limit = subtitles.MAX_BYTES
    sent = request.headers.get("content-length", "")
    too_large = Problem(413, f"caption files are at most {limit} bytes", slug="too-large")
    if sent.isdigit() and int(sent) > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _add(
    request: Request,
    db: Database,
    media_id: str,
    data: bytes,
    *,
    language: str,
    label: str | None,
    charset: str | None,
    idem: idempotency.Use,
) -> dict[str, Any]:
    def remember(session: Session, caption: MediaCaption) -> None:
        location = f"/api/v1/media/{media_id}/captions/{caption.id}"
        idempotency.remember(session, idem, status=201, body=_public(request, caption), location=location)

    try:
        caption = captions.add(
            db,
            request.app.state.storage(),
            media_id,
            data,
            language=language,
            label=label,
            charset=charset,
            with_row=remember,
        )
    except captions.InvalidTrack as exc:
        raise invalid([exc.field], str(exc)) from exc
    except subtitles.CaptionError as exc:
        raise Problem(
            422, str(exc), errors=[field_error(["body"], str(exc))], slug="invalid-captions"
        ) from exc
    except Conflict as exc:
        media = assets.find_media(db, media_id)
        soon = media is not None and media.state in (assets.PENDING, assets.IMPORTING, assets.PROCESSING)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if soon else None
        raise Problem(409, str(exc), slug="conflict", headers=headers) from exc
    return _public(request, caption)


@router.post(
    "/{media_id}/captions",
    status_code=201,
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "an SRT or WebVTT file (UTF-8, UTF-16 with a byte order mark, the `charset` of "
            f"Content-Type, else Windows-1252), at most {subtitles.MAX_BYTES} bytes",
            "content": {
                "text/vtt": {"schema": {"type": "string"}},
                "application/x-subrip": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    },
    responses=success(201, "the new caption track", CaptionPublic, located=True)
    | problems(404)
    | problem(409, "the asset is not ready (then `Retry-After`), is being deleted, or has 50 tracks")
    | problem(413, f"the file is over {subtitles.MAX_BYTES} bytes")
    | problem(415, "a multipart form: send the file's bytes as the body")
    | problem(
        422, "a bad language or label, or a file that is not SRT or WebVTT (the message names the line)"
    ),
)
async def add_caption(
    media_id: str,
    request: Request,
    db: DbDep,
    language: Annotated[str, Query(min_length=1, max_length=35, description="BCP 47 tag: en, pt-BR")],
    label: Annotated[str | None, Query(max_length=200, description="shown in players' menus")] = None,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        raise Problem(
            415,
            "send the caption file's bytes as the request body, not a multipart form",
            slug="unsupported-media-type",
        )
    data = await _body(request)
    track = {"language": language, "label": label, "sha256": hashlib.sha256(data).hexdigest()}
    idem = idempotency.use(request, idempotency_key, track)
    if (replayed := await run_in_threadpool(idempotency.replay, db, idem)) is not None:
        return replayed
    answer = await run_in_threadpool(
        lambda: _add(
            request,
            db,
            media_id,
            data,
            language=language,
            label=label,
            charset=_charset(content_type),
            idem=idem,
        )
    )
    location = f"/api/v1/media/{media_id}/captions/{answer['id']}"
    return JSONResponse(answer, status_code=201, headers={"Location": location})


@router.get(
    "/{media_id}/captions",
    response_model=None,
    responses=success(200, "the asset's caption tracks, oldest first", CaptionPage) | problems(404),
)
def list_captions(media_id: str, request: Request, db: DbDep) -> dict[str, Any]:
    media = assets.get_media(db, media_id)
    return {"items": [_public(request, c) for c in captions.tracks(db, media.id)], "next_cursor": None}


@router.get(
    "/{media_id}/captions/{caption_id}",
    response_model=None,
    responses=success(200, "the caption track", CaptionPublic) | problems(404),
)
def get_caption(media_id: str, caption_id: str, request: Request, db: DbDep) -> dict[str, Any]:
    return _public(request, captions.get(db, assets.get_media(db, media_id).id, caption_id))


@router.delete(
    "/{media_id}/captions/{caption_id}",
    status_code=204,
    response_class=Response,
    responses=success(204, "removed from the asset and its master; the files go shortly after")
    | problems(404),
)
def delete_caption(media_id: str, caption_id: str, db: DbDep, services: ServicesDep) -> Response:
    captions.remove(services, assets.get_media(db, media_id).id, caption_id)
    return Response(status_code=204)
