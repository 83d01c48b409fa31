"""/api/v1/media/{id}/files/{path}: an asset's stored files, streamed with byte ranges or redirected."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from mediajobs.api.deps import DbDep
from mediajobs.api.problems import Problem
from mediajobs.media import assets
from mediajobs.storage import InvalidKey, InvalidRange, ObjectNotFound, join_key

router = APIRouter(prefix="/api/v1/media", tags=["media"])

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
