"""/api/v1/media/{id}/files/{path}: an asset's stored files, streamed with byte ranges or redirected.

Stored files include whatever strangers uploaded, and this API shares its origin with the web UI (which holds
the API key). So a file is only ever served as one of a few media types that browsers do not run, and
anything else is a download; every answer says `nosniff` and sandboxes itself.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from mediajobs.api.deps import DbDep, SettingsDep
from mediajobs.api.openapi import file_responses
from mediajobs.api.problems import Problem
from mediajobs.config import Settings
from mediajobs.media import assets, captions, downloads, livehls, playback
from mediajobs.storage import InvalidKey, InvalidRange, ObjectInfo, ObjectNotFound, Storage, join_key

router = APIRouter(prefix="/api/v1/media", tags=["media"])

PLAYLIST = "application/vnd.apple.mpegurl"
DOWNLOAD = "application/octet-stream"
# Playlists are read whole to be rewritten; a bigger `.m3u8` (ours are KiB) is served as a download.
PLAYLIST_CAP_BYTES = 1024 * 1024
S3_MAX_EXPIRES_S = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live
HLS_DIR = "hls/"  # every HLS version of an asset (playlists, segments, init segments) lives under it
CAPTIONS_DIR = "captions/"  # caption tracks: WebVTT files and their subtitles playlists

# By extension: what we serve inline. None of these is run by a browser (with nosniff).
SERVED_TYPES = {
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".vtt": "text/vtt",
    ".gif": "image/gif",
}
SAFE_TYPES = frozenset(SERVED_TYPES.values())
# A real WebVTT file (storyboards, captions) is read by the API, like a playlist, so that its image references
# (storyboard cues) carry the playback token on; players fetch them relative to the VTT.
VTT = "text/vtt"
VTT_CAP_BYTES = 4 * 1024 * 1024


def served_type(key: str, stored_type: str | None) -> str:
    """The allowlisted type for a file (by name, else its stored type), or DOWNLOAD."""
    by_name = SERVED_TYPES.get(PurePosixPath(key).suffix.lower())
    stored = (stored_type or "").split(";")[0].strip().lower()
    return by_name or (stored if stored in SAFE_TYPES else DOWNLOAD)


def file_headers(
    settings: Settings, key: str, media_type: str, cache: str, *, save_as: str | None = None
) -> dict[str, str]:
    """Headers of every file answer; `save_as` (`?download=1`) makes it an attachment under that name."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        # Answers opened by a key or token must not land in shared caches.
        "Cache-Control": f"private, {cache}" if settings.api_key_list else cache,
    }
    if media_type == DOWNLOAD or save_as is not None:
        headers["Content-Disposition"] = downloads.attachment(save_as or PurePosixPath(key).name)
    return headers


@router.head("/{media_id}/files/{path:path}", include_in_schema=False)
@router.get(
    "/{media_id}/files/{path:path}", responses=file_responses([PLAYLIST, VTT, DOWNLOAD, *sorted(SAFE_TYPES)])
)
def get_file(media_id: str, path: str, request: Request, db: DbDep, settings: SettingsDep) -> Response:
    media = assets.get_media(db, media_id)
    missing = Problem(404, f"no file {path!r} in media {media.id}", slug="not-found")
    try:
        key = join_key(assets.prefix(media.id), path)
    except InvalidKey as exc:
        raise missing from exc
    head = request.method == "HEAD"
    token = request.query_params.get(playback.QUERY)
    storage: Storage = request.app.state.storage()
    # A rendition still being encoded: its growing playlist is built from the database, not stored.
    text = livehls.render(db, media, path) if media.state == assets.PROCESSING else None
    info = storage.stat(key) if text is None else None
    if text is None and info is None:
        raise missing
    if text is None and info is not None and key.endswith(".m3u8"):
        text = _read_playlist(storage, key, info.size)
        if text is not None:
            text = captions.master_with_captions(db, media, path, text)
    if text is not None:
        # Playlists come from the API so their relative URIs resolve here and carry the token on.
        child_token = _child_token(settings, media.id, token)
        body = (playback.tokenize_playlist(text, child_token) if child_token else text).encode()
        headers = file_headers(settings, key, PLAYLIST, "no-cache")
        headers["Content-Length"] = str(len(body))
        return Response(b"" if head else body, media_type=PLAYLIST, headers=headers)
    assert info is not None
    save_as = downloads.filename(media, path) if _wants_download(request) else None
    if key.endswith(".vtt") and (vtt := _read_vtt(storage, key, info.size)) is not None:
        child_token = _child_token(settings, media.id, token)
        body = (playback.tokenize_vtt(vtt, child_token) if child_token else vtt).encode()
        headers = file_headers(settings, key, VTT, "no-cache", save_as=save_as)
        headers["Content-Length"] = str(len(body))
        return Response(b"" if head else body, media_type=f"{VTT}; charset=utf-8", headers=headers)
    return answer_file(request, settings, storage, media.id, key, path, info, save_as=save_as)


def answer_file(
    request: Request,
    settings: Settings,
    storage: Storage,
    media_id: str,
    key: str,
    path: str,
    info: ObjectInfo,
    *,
    save_as: str | None = None,
) -> Response:
    """A stored file of an asset: a redirect to a signed URL where allowed, else streamed with ranges."""
    media_type = served_type(key, info.content_type)
    if media_type != DOWNLOAD and redirects(settings, path):
        token = request.query_params.get(playback.QUERY)
        expires_s = min(playback.expires_in_s(settings, media_id, token), S3_MAX_EXPIRES_S)
        disposition = downloads.attachment(save_as) if save_as else None
        signed = storage.signed_url(
            key, expires_s=expires_s, content_type=media_type, disposition=disposition
        )
        if signed is not None:
            headers = file_headers(settings, key, media_type, "no-store", save_as=save_as)
            return RedirectResponse(signed, status_code=307, headers=headers)
    headers = file_headers(settings, key, media_type, "max-age=3600", save_as=save_as)
    head = request.method == "HEAD"
    return _stream(storage, key, info.size, media_type, request.headers.get("range"), headers, head=head)


def _wants_download(request: Request) -> bool:
    return request.query_params.get("download", "").lower() in ("1", "true", "yes")


def redirects(settings: Settings, path: str) -> bool:
    """Whether a file the storage can sign may be answered by a redirect (MEDIAJOBS_S3_REDIRECT).

    Chromium's native HLS player refuses segments from an origin other than the playlist's unless the page
    asked for CORS (`crossorigin`), and hls.js reads segments with CORS, which a fresh bucket refuses: so by
    default HLS is streamed from the API's own origin, and only thumbnails and originals (an <img>, a
    download, a plain <video> need no CORS) go to the bucket. Caption files are read by hls.js too (and by
    <track>, which needs CORS across origins), so they stay with HLS.
    """
    mode = settings.s3_redirect
    return mode == "all" or (mode == "except-hls" and not path.startswith((HLS_DIR, CAPTIONS_DIR)))


def _child_token(settings: Settings, media_id: str, token: str | None) -> str | None:
    """The token for a playlist's children: the request's own when it is valid, else a fresh one."""
    if token:
        try:
            playback.verify(settings, media_id, token)
            return token
        except playback.BadToken:
            pass
    return playback.sign(settings, media_id)


def _read_playlist(storage: Storage, key: str, size: int) -> str | None:
    """The text of a real HLS playlist under the cap; None for anything else (served as a download)."""
    if not 0 < size <= PLAYLIST_CAP_BYTES:
        return None
    try:
        # Never more than the stat'ed size, whatever the object has become since.
        data = b"".join(storage.open_reader(key, start=0, end=size - 1))
    except (InvalidRange, ObjectNotFound):
        return None
    data = data.removeprefix(b"\xef\xbb\xbf")
    if not data.startswith(b"#EXTM3U"):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _read_vtt(storage: Storage, key: str, size: int) -> str | None:
    """The text of a real WebVTT file under the cap; None for anything else (served as a download)."""
    if not 0 < size <= VTT_CAP_BYTES:
        return None
    try:
        data = b"".join(storage.open_reader(key, start=0, end=size - 1))
    except (InvalidRange, ObjectNotFound):
        return None
    data = data.removeprefix(b"\xef\xbb\xbf")
    # "WEBVTT" then a space, a tab or a line end (RFC: the signature line).
    if not re.match(rb"WEBVTT(?:[ \t\r\n]|$)", data):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _stream(
    storage: Storage,
    key: str,
    size: int,
    media_type: str,
    range_header: str | None,
    headers: dict[str, str],
    *,
    head: bool,
) -> Response:
    headers = {**headers, "Accept-Ranges": "bytes"}
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (range_header or "").strip())
    if match and (match[1] or match[2]):
        start = int(match[1]) if match[1] else max(0, size - int(match[2]))
        end = min(int(match[2]) if match[1] and match[2] else size - 1, size - 1)
        try:
            stream: Any = storage.open_reader(key, start=start, end=end)
        except InvalidRange:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        except ObjectNotFound:
            return Response(status_code=404, headers=headers)
        headers.update(
            {"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)}
        )
        status = 206
    else:
        headers["Content-Length"] = str(size)
        stream, status = (None if head else storage.open_reader(key)), 200
    if head:
        if stream is not None:
            stream.close()
        return Response(status_code=status, media_type=media_type, headers=headers)
    return StreamingResponse(stream, status_code=status, media_type=media_type, headers=headers)
