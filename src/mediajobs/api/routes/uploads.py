"""/api/v1/uploads: resumable uploads (tus 1.0.0 with creation, creation-with-upload, termination, expiration
and checksum). Each creates an asset that is `uploading` until its last byte, then processed like any upload.

Stateless: the bytes go to the storage as they arrive (storage/partial.py), the offset to the database
(media/uploads.py), so the next request may land on any API process, or on this one after a restart.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from mediajobs.api import tus
from mediajobs.api.deps import DbDep, ServicesDep, SettingsDep
from mediajobs.api.openapi import Responses, problem, problems
from mediajobs.api.problems import Problem
from mediajobs.api.uploads import FirstBytes
from mediajobs.db.models import Upload, utcnow
from mediajobs.db.session import Database
from mediajobs.jobs.hooks import Services
from mediajobs.media import uploads
from mediajobs.storage import Storage, StorageUnavailable
from mediajobs.storage.partial import PartialWriter
from mediajobs.units import format_bytes

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])

BUFFER_BYTES = 1024 * 1024  # bytes handed to the storage at a time
COMMIT_BYTES = 8 * 1024 * 1024  # how often a long PATCH records its offset (S3: every whole part)
WAIT_FOR_WRITER_S = 3.0  # a request cut off a moment ago is still storing its last bytes: wait for it
WAIT_STEP_S = 0.05

Version = Annotated[str | None, Header(alias="Tus-Resumable", description="must be `1.0.0`")]
Checksum = Annotated[
    str | None, Header(alias="Upload-Checksum", description="`<algorithm> <base64 digest>` of this body")
]
BodyType = Annotated[str | None, Header(alias="Content-Type")]
OCTETS_BODY = {
    "requestBody": {
        "description": "bytes of the file from `Upload-Offset` on",
        "content": {tus.OCTETS: {"schema": {"type": "string", "format": "binary"}}},
    }
}
TUS_HEADERS = {"Tus-Resumable": {"description": "`1.0.0`", "schema": {"type": "string"}}}
REFUSED_VERSION = problem(412, "no `Tus-Resumable: 1.0.0` header (the answer's `Tus-Version` says which)")


def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


def _answer(status: int, description: str, headers: dict[str, Any]) -> Responses:
    """A bodiless success answer of the protocol, with the headers it carries."""
    return {status: {"description": description, "headers": {**TUS_HEADERS, **headers}}}


class _Lost(Exception):
    """The request's claim on the upload went (taken over, terminated, expired, its asset deleted)."""


def _storage(request: Request) -> Storage:
    return request.app.state.storage()  # type: ignore[no-any-return]


def _refused(refusal: uploads.Refusal, offset: int) -> tus.Problem:
    row = refusal.upload
    if refusal.reason == "missing" or row is None:
        return tus.problem(404, "no such upload; create one with POST /api/v1/uploads", "not-found")
    if refusal.reason == "expired":
        return tus.problem(410, "this upload expired or was terminated; start a new one", "upload-gone")
    if refusal.reason == "offset":
        return tus.problem(
            409,
            f"Upload-Offset is {offset} but the upload has {row.offset} bytes; HEAD it and send from there",
            "offset-mismatch",
        )
    if refusal.reason == "done":
        return tus.problem(409, "this upload is complete already", "upload-complete")
    return tus.problem(
        423, "another request is writing to this upload; try again in a moment", "upload-locked"
    )


async def _claim(db: Database, upload_id: str, offset: int, token: str) -> Upload:
    """Claim the upload, waiting a moment for a request still storing what it had (423 if it stays)."""
    deadline = time.monotonic() + WAIT_FOR_WRITER_S
    while True:
        got = await run_in_threadpool(uploads.claim, db, upload_id, offset=offset, token=token)
        if isinstance(got, Upload):
            return got
        if got.reason != "locked" or time.monotonic() >= deadline:
            raise _refused(got, offset)
        await asyncio.sleep(WAIT_STEP_S)


async def _receive(
    request: Request,
    db: Database,
    storage: Storage,
    upload: Upload,
    token: str,
    *,
    checksum: tus.Checksum | None,
    expiry_s: float,
) -> Upload:
    """Store the body from the upload's offset and record it; a cut connection keeps what arrived (unless the
    body had a checksum, which a part cannot match). The upload as recorded afterwards."""
    writer: PartialWriter = await run_in_threadpool(storage.resume_partial, upload.key, upload.partial)
    hasher = checksum.new() if checksum is not None else None
    recorded, renewed = upload.offset, time.monotonic()
    pending: list[bytes] = []
    pending_bytes = 0

    async def store() -> None:
        nonlocal pending, pending_bytes, renewed, recorded
        if time.monotonic() - renewed > uploads.RENEW_EVERY_S:
            # Renewed before the storage sees a byte: a claim taken over never meets its old holder's write.
            if not await run_in_threadpool(uploads.renew, db, upload.id, token):
                raise _Lost
            renewed = time.monotonic()
        data, pending, pending_bytes = b"".join(pending), [], 0
        await run_in_threadpool(writer.write, data)
        if hasher is None and writer.size - recorded >= COMMIT_BYTES:
            state = await run_in_threadpool(writer.checkpoint)
            if state["size"] > recorded:
                await commit(state)

    async def commit(state: dict[str, Any]) -> None:
        nonlocal recorded, renewed
        if not await run_in_threadpool(
            uploads.record, db, upload.id, token, partial=state, expiry_s=expiry_s
        ):
            raise _Lost
        await run_in_threadpool(writer.recorded, state)
        recorded, renewed = int(state["size"]), time.monotonic()

    cut = False
    # The file's first bytes say whether it is media (415 before any is stored). They come with the first
    # body; one that starts later (a client resuming after a tiny first PATCH) is left to the probe.
    first = FirstBytes() if upload.offset == 0 else None
    try:
        try:
            async for chunk in request.stream():
                if writer.size + pending_bytes + len(chunk) > upload.length:
                    raise tus.problem(
                        413,
                        f"the body goes past the upload's length of {upload.length} bytes (Upload-Length)",
                        "past-length",
                    )
                if first is not None:
                    first.feed(chunk)
                    if first.enough or len(first.head) == upload.length:
                        first.check()
                if hasher is not None:
                    hasher.update(chunk)
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= BUFFER_BYTES:
                    await store()
        except ClientDisconnect:
            cut = True  # the client is gone: keep what reached us, it resumes from there
        if hasher is not None and (cut or hasher.digest() != checksum.digest):  # type: ignore[union-attr]
            await run_in_threadpool(writer.discard)
            if cut:
                return upload
            raise tus.problem(
                tus.CHECKSUM_MISMATCH,
                f"the body does not match its Upload-Checksum ({checksum.algorithm}); nothing of it was "  # type: ignore[union-attr]
                "stored, send it again",
                "checksum-mismatch",
            )
        if pending:
            await store()
        state = await run_in_threadpool(writer.flush)
        if state["size"] > recorded:
            await commit(state)
    except _Lost:
        await run_in_threadpool(writer.discard)
        row = await run_in_threadpool(uploads.find, db, upload.id)
        raise _refused(uploads.refusal(row, upload.offset, utcnow()), upload.offset) from None
    except StorageUnavailable as exc:
        await run_in_threadpool(writer.discard)
        raise tus.problem(503, f"the storage is unreachable right now: {exc}", "storage-unavailable") from exc
    except BaseException:
        await run_in_threadpool(writer.discard)
        raise
    finally:
        await run_in_threadpool(writer.close)
    found = await run_in_threadpool(uploads.find, db, upload.id)
    return found or upload


async def _write(
    request: Request,
    services: Services,
    upload: Upload,
    token: str,
    checksum: tus.Checksum | None,
) -> Upload:
    """Receive a body into a claimed upload, complete it when it is whole, and let go of the claim."""
    db, settings, storage = services.db, services.settings, _storage(request)
    try:
        try:
            upload = await _receive(
                request, db, storage, upload, token, checksum=checksum, expiry_s=settings.upload_expiry_s
            )
        except Problem as exc:
            if exc.status == 415:  # not media: nothing more of it will be taken, nor its asset kept
                await run_in_threadpool(uploads.release, db, upload.id, token)
                await _end(services, storage, upload.id)
            raise
        if upload.offset == upload.length and upload.state == uploads.ACTIVE:
            await run_in_threadpool(uploads.complete, services, storage, upload, token)
            found = await run_in_threadpool(uploads.find, db, upload.id)
            upload = found or upload
    finally:
        await run_in_threadpool(uploads.release, db, upload.id, token)
    return upload


async def _end(services: Services, storage: Storage, upload_id: str) -> None:
    """End an upload and remove its asset (termination's work), waiting a moment for a writer to let go."""
    row = await run_in_threadpool(uploads.end, services.db, upload_id)
    if row is None or row.state in (uploads.DONE, uploads.GONE):
        return
    token = uploads.new_token()
    deadline = time.monotonic() + WAIT_FOR_WRITER_S
    while (taken := await run_in_threadpool(uploads.take_ending, services.db, row.id, token)) is None:
        if time.monotonic() >= deadline:
            return  # its writer stops at its next renewal; then the sweep of some process removes it all
        await asyncio.sleep(WAIT_STEP_S)
    await run_in_threadpool(uploads.remove, services, storage, taken, token)


def _progress_headers(upload: Upload) -> dict[str, str]:
    extra = {"Upload_Offset": str(upload.offset), "Mediajobs_Media_Id": upload.media_id}
    if upload.state == uploads.ACTIVE:
        extra["Upload_Expires"] = tus.http_date(upload.expires_at)
    return tus.headers(**extra)


@router.options(
    "",
    status_code=204,
    response_model=None,
    responses=_answer(
        204,
        "what this tus server supports",
        {
            "Tus-Version": _header("`1.0.0`"),
            "Tus-Extension": _header("the extensions, comma-separated"),
            "Tus-Max-Size": _header(
                "the largest Upload-Length accepted (MEDIAJOBS_MAX_UPLOAD_BYTES)", "integer"
            ),
            "Tus-Checksum-Algorithm": _header("the Upload-Checksum algorithms, comma-separated"),
        },
    ),
)
def describe_uploads(settings: SettingsDep) -> Response:
    return Response(
        status_code=204,
        headers=tus.headers(
            Tus_Version=tus.VERSION,
            Tus_Extension=",".join(tus.EXTENSIONS),
            Tus_Max_Size=str(settings.max_upload_bytes),
            Tus_Checksum_Algorithm=",".join(tus.ALGORITHMS),
        ),
    )


@router.post(
    "",
    status_code=201,
    response_model=None,
    openapi_extra=OCTETS_BODY,
    responses=_answer(
        201,
        "the upload and its asset (`uploading`); with a body, its first bytes stored",
        {
            "Location": _header("the upload's URL"),
            "Mediajobs-Media-Id": _header("the id of the asset the upload makes"),
            "Upload-Expires": _header("when it is removed unless more bytes arrive"),
            "Upload-Offset": _header("bytes stored (when the request had a body)", "integer"),
        },
    )
    | problem(400, "Upload-Length missing or not a number, malformed Upload-Metadata or Upload-Checksum")
    | REFUSED_VERSION
    | problem(413, "Upload-Length is over Tus-Max-Size (MEDIAJOBS_MAX_UPLOAD_BYTES); nothing was stored")
    | problem(415, "a body that is not `application/offset+octet-stream`, or not video or audio")
    | problem(tus.CHECKSUM_MISMATCH, "the body does not match its Upload-Checksum; nothing of it was stored"),
)
async def create_upload(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    services: ServicesDep,
    tus_resumable: Version = None,
    upload_length: Annotated[
        str | None, Header(alias="Upload-Length", description="the whole file's size in bytes")
    ] = None,
    upload_metadata: Annotated[
        str | None,
        Header(
            alias="Upload-Metadata",
            description="`key base64value` pairs, comma-separated: `filename`, `filetype`, `pipeline` "
            "(e.g. `hls,thumbnail`)",
        ),
    ] = None,
    upload_defer_length: Annotated[str | None, Header(alias="Upload-Defer-Length")] = None,
    content_type: BodyType = None,
    upload_checksum: Checksum = None,
) -> Response:
    tus.check_version(tus_resumable)
    if upload_defer_length is not None:
        raise tus.problem(400, "Upload-Defer-Length is not supported: send Upload-Length", "bad-header")
    length = tus.parse_size(upload_length, "Upload-Length") or 0
    if length > settings.max_upload_bytes:
        limit = settings.max_upload_bytes
        raise tus.problem(
            413,
            f"the upload of {format_bytes(length)} is over the limit of {format_bytes(limit)} "
            f"({limit:,} bytes; Tus-Max-Size, MEDIAJOBS_MAX_UPLOAD_BYTES)",
            "too-large",
        )
    if length == 0:
        raise tus.problem(400, "Upload-Length is 0: the file is empty; choose a video or audio file", "empty")
    meta = tus.parse_metadata(upload_metadata)
    described = tus.describe(meta)
    with_body = tus.body_type(content_type) == tus.OCTETS
    if not with_body and (content_type or int(request.headers.get("content-length") or 0)):
        raise tus.problem(415, f"a body sent on creation must be {tus.OCTETS}", "unsupported-media-type")
    checksum = tus.parse_checksum(upload_checksum) if with_body else None
    token = uploads.new_token() if with_body else None
    upload = await run_in_threadpool(
        lambda: uploads.create(
            db,
            _storage(request),
            length=length,
            meta={"raw": upload_metadata or ""},
            filename=described.filename,
            content_type=described.content_type,
            pipeline=described.pipeline,
            expiry_s=settings.upload_expiry_s,
            claim_for=token,
        )
    )
    extra = {"Location": f"/api/v1/uploads/{upload.id}", "Mediajobs_Media_Id": upload.media_id}
    if token is not None:
        upload = await _write(request, services, upload, token, checksum)
        return Response(status_code=201, headers={**_progress_headers(upload), **tus.headers(**extra)})
    extra["Upload_Expires"] = tus.http_date(upload.expires_at)
    return Response(status_code=201, headers=tus.headers(**extra))


@router.head(
    "/{upload_id}",
    status_code=200,
    response_model=None,
    responses=_answer(
        200,
        "how many bytes are stored (a request cut off a moment ago is waited for)",
        {
            "Upload-Offset": _header("bytes stored", "integer"),
            "Upload-Length": _header("the whole file's size", "integer"),
            "Mediajobs-Media-Id": _header("the id of the asset the upload makes"),
            "Upload-Metadata": _header("as sent on creation"),
            "Upload-Expires": _header("when it is removed unless more bytes arrive"),
        },
    )
    | problems(404)
    | REFUSED_VERSION
    | problem(410, "the upload expired or was terminated"),
)
async def get_upload_offset(upload_id: str, db: DbDep, tus_resumable: Version = None) -> Response:
    tus.check_version(tus_resumable)
    deadline = time.monotonic() + WAIT_FOR_WRITER_S
    while True:
        row = await run_in_threadpool(uploads.find, db, upload_id)
        if row is None or not uploads.claimed(row) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(WAIT_STEP_S)
    if row is None:
        raise _refused(uploads.Refusal("missing", None), 0)
    if row.state in (uploads.ENDING, uploads.GONE) or (
        row.state == uploads.ACTIVE and row.expires_at.timestamp() <= time.time()
    ):
        raise _refused(uploads.Refusal("expired", row), 0)
    headers = _progress_headers(row)
    headers.update({"Upload-Length": str(row.length), "Cache-Control": "no-store"})
    if (row.meta or {}).get("raw"):
        headers["Upload-Metadata"] = row.meta["raw"]
    return Response(status_code=200, headers=headers)


@router.patch(
    "/{upload_id}",
    status_code=204,
    response_model=None,
    openapi_extra=OCTETS_BODY,
    responses=_answer(
        204,
        "the body is stored; with the last byte the asset goes on to processing",
        {
            "Upload-Offset": _header("bytes stored now", "integer"),
            "Upload-Expires": _header("when it is removed unless more bytes arrive"),
            "Mediajobs-Media-Id": _header("the id of the asset the upload makes"),
        },
    )
    | problem(400, "Upload-Offset missing or not a number, or a malformed Upload-Checksum")
    | problems(404)
    | problem(409, "Upload-Offset is not the upload's offset (HEAD it), or the upload is complete")
    | problem(410, "the upload expired or was terminated")
    | REFUSED_VERSION
    | problem(413, "the body goes past Upload-Length; nothing of it was stored")
    | problem(
        415,
        "the body is not `application/offset+octet-stream`, or the file is not video or audio (a text file, "
        "a picture, ...: the upload and its asset are removed)",
    )
    | problem(423, "another request is writing to this upload right now")
    | problem(tus.CHECKSUM_MISMATCH, "the body does not match its Upload-Checksum; nothing of it was stored")
    | problem(503, "the storage is unreachable; try again"),
)
async def append_to_upload(
    upload_id: str,
    request: Request,
    db: DbDep,
    services: ServicesDep,
    tus_resumable: Version = None,
    upload_offset: Annotated[
        str | None, Header(alias="Upload-Offset", description="where this body starts in the file")
    ] = None,
    content_type: BodyType = None,
    upload_checksum: Checksum = None,
) -> Response:
    tus.check_version(tus_resumable)
    if tus.body_type(content_type) != tus.OCTETS:
        raise tus.problem(415, f"a PATCH body must be 'Content-Type: {tus.OCTETS}'", "unsupported-media-type")
    offset = tus.parse_size(upload_offset, "Upload-Offset") or 0
    checksum = tus.parse_checksum(upload_checksum)
    declared = request.headers.get("content-length")
    row = await run_in_threadpool(uploads.find, db, upload_id)
    if row is not None and declared and declared.isdigit() and offset + int(declared) > row.length:
        raise tus.problem(
            413,
            f"{declared} bytes from offset {offset} go past the upload's length of {row.length} bytes",
            "past-length",
        )
    token = uploads.new_token()
    upload = await _claim(db, upload_id, offset, token)
    upload = await _write(request, services, upload, token, checksum)
    return Response(status_code=204, headers=_progress_headers(upload))


@router.delete(
    "/{upload_id}",
    status_code=204,
    response_model=None,
    responses=_answer(204, "the upload and its asset are removed", {})
    | problems(404)
    | problem(409, "the upload is complete: delete its asset (DELETE /api/v1/media/{id}) instead")
    | problem(410, "the upload expired or was terminated already")
    | REFUSED_VERSION,
)
async def terminate_upload(
    upload_id: str, request: Request, db: DbDep, services: ServicesDep, tus_resumable: Version = None
) -> Response:
    tus.check_version(tus_resumable)
    row = await run_in_threadpool(uploads.end, db, upload_id)
    if row is None:
        raise _refused(uploads.Refusal("missing", None), 0)
    if row.state == uploads.DONE:
        raise tus.problem(
            409,
            f"this upload is complete; delete its asset with DELETE /api/v1/media/{row.media_id}",
            "upload-complete",
        )
    if row.state == uploads.GONE:
        raise _refused(uploads.Refusal("expired", row), 0)
    await _end(services, _storage(request), row.id)
    return Response(status_code=204, headers=tus.headers())
