"""Streaming an upload body into storage with flat memory: raw bodies and multipart/form-data alike."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from mediajobs.api.problems import Problem, invalid
from mediajobs.storage import ObjectWriter, Storage, content_type_for
from mediajobs.toolkit import sniff
from mediajobs.units import format_bytes

CHUNK = 1024 * 1024
# What clients send when they do not know (curl --data-binary sends a form type): the name says more.
GENERIC_TYPES = ("", "application/octet-stream", "application/x-www-form-urlencoded", "multipart/form-data")


def media_type(sent: str | None, key: str) -> str:
    """The type to record for an uploaded file: what the client said, unless that says nothing."""
    sent = (sent or "").split(";")[0].strip().lower()
    return content_type_for(key) if sent in GENERIC_TYPES else sent


def too_large(max_bytes: int, size: int | None = None) -> Problem:
    """The 413 for an upload over MEDIAJOBS_MAX_UPLOAD_BYTES, in units a person reads."""
    what = f"the upload of {format_bytes(size)}" if size is not None else "the upload"
    return Problem(
        413,
        f"{what} is over the limit of {format_bytes(max_bytes)} ({max_bytes:,} bytes; "
        "MEDIAJOBS_MAX_UPLOAD_BYTES)",
        slug="too-large",
    )


class FirstBytes:
    """The start of an upload's file, kept until it shows whether the file is media (`toolkit/sniff`).

    `feed` each chunk as it arrives and `check` before storing anything: a 415 naming what the file is
    ("this is a PNG image; upload a video or audio file ...") as soon as enough bytes are in.
    """

    def __init__(self) -> None:
        self.head = b""
        self.checked = False

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < sniff.SNIFF_BYTES:
            self.head += chunk[: sniff.SNIFF_BYTES - len(self.head)]

    @property
    def enough(self) -> bool:
        return len(self.head) >= sniff.SNIFF_BYTES

    def check(self) -> None:
        """Problem 415 when the bytes so far are not media; call once enough are in, or at the body's end."""
        if self.checked:
            return
        self.checked = True
        if (refusal := sniff.sniff(self.head).refusal) is not None:
            raise Problem(415, refusal, slug="unsupported-media")


@dataclass
class Stored:
    key: str
    size: int
    filename: str
    content_type: str
    sha256: str = ""


async def _multipart_file(request: Request, boundary: bytes, meta: dict[str, str]) -> AsyncIterator[bytes]:
    """The bytes of the form's `file` field, parsed as they arrive (nothing is spooled)."""
    pending: list[bytes] = []
    state: dict[str, Any] = {
        "in_file": False,
        "seen_file": False,
        "header": b"",
        "headers": {},
        "ended": False,
    }

    def on_part_begin() -> None:
        state["headers"] = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] = data[start:end].lower()

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["headers"][state["header"]] = state["headers"].get(state["header"], b"") + data[start:end]  # type: ignore[index,union-attr]

    def on_headers_finished() -> None:
        headers: dict[bytes, bytes] = state["headers"]  # type: ignore[assignment]
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        is_file = options.get(b"name") == b"file" and not state["seen_file"]
        state["in_file"] = is_file
        if is_file:
            state["seen_file"] = True
            meta["filename"] = options.get(b"filename", b"").decode("utf-8", "replace")
            meta["content_type"] = headers.get(b"content-type", b"").decode("latin-1")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            pending.append(data[start:end])

    def on_part_end() -> None:
        state["in_file"] = False

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if pending:
                yield b"".join(pending)
                pending.clear()
        parser.finalize()
    except MultipartParseError as exc:
        raise _malformed(f"{exc}") from exc
    if not state["ended"]:
        # python_multipart's finalize() accepts a body cut short; a truncated file must not be stored.
        raise _malformed("the body ends before the closing boundary")
    if pending:
        yield b"".join(pending)
    if not state["seen_file"]:
        raise invalid(["file"], "the multipart form has no field named 'file'")


def _malformed(reason: str) -> Problem:
    return Problem(
        400,
        f"malformed multipart/form-data body: {reason}; send a form with a 'file' field, or the raw bytes",
        slug="malformed-multipart",
    )


async def store_upload(
    request: Request,
    storage: Storage,
    *,
    key_for: Callable[[str], str],
    max_bytes: int,
    filename: str | None,
) -> Stored:
    """Stream the body to storage: 413 over `max_bytes`, 422 when empty, nothing left on failure."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise too_large(max_bytes, int(length))
    body, meta = _file_bytes(request, filename)
    digest = hashlib.sha256()
    writer: ObjectWriter | None = None
    buffered: list[bytes] = []
    size = buffered_size = 0
    first = FirstBytes()
    try:
        async for chunk in body:
            digest.update(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise too_large(max_bytes)
            first.feed(chunk)
            if first.enough:
                first.check()  # nothing is stored yet: the writer opens after a whole CHUNK
            buffered.append(chunk)
            buffered_size += len(chunk)
            if buffered_size >= CHUNK:
                if writer is None:
                    writer = storage.open_writer(key_for(filename or meta["filename"]))
                await run_in_threadpool(writer.write, b"".join(buffered))
                buffered, buffered_size = [], 0
        if size == 0:
            raise invalid(
                ["body"], "the upload is empty; send the file's bytes as the body or a 'file' form field"
            )
        first.check()
        if writer is None:
            writer = storage.open_writer(key_for(filename or meta["filename"]))
        if buffered:
            await run_in_threadpool(writer.write, b"".join(buffered))
        await run_in_threadpool(writer.commit)
    except BaseException:
        if writer is not None:
            await run_in_threadpool(writer.abort)
        raise
    return Stored(writer.key, size, filename or meta["filename"], meta["content_type"], digest.hexdigest())


def _file_bytes(request: Request, filename: str | None) -> tuple[AsyncIterator[bytes], dict[str, str]]:
    """The uploaded file's bytes as they arrive (the raw body, or a form's `file` field), and what the
    request says of it (`filename`, `content_type`; a form's are known once its part has begun)."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    meta = {"filename": filename or "", "content_type": content_type.decode("latin-1")}
    if content_type == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise invalid(["content-type"], "multipart/form-data needs a boundary")
        return _multipart_file(request, boundary, meta), meta
    return request.stream(), meta


async def upload_digest(request: Request, *, max_bytes: int, filename: str | None) -> tuple[str, str]:
    """(SHA-256 of the uploaded file, its name) without storing anything: what a replay is compared by."""
    body, meta = _file_bytes(request, filename)
    digest, size = hashlib.sha256(), 0
    async for chunk in body:
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        digest.update(chunk)
    return digest.hexdigest(), filename or meta["filename"]
