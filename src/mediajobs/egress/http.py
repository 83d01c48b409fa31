"""Just enough HTTP/1.1 for the egress proxy: bounded request and response heads, bodies, and verdicts."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import SplitResult

from mediajobs.toolkit import sniff

# Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own: never passed on.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
# How much of a body the proxy looks at before it decides whether the body is media (see `is_media`).
SNIFF_BYTES = sniff.SNIFF_BYTES


class BadMessage(Exception):
    """The peer sent something that is not acceptable HTTP; `status` is what a client gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Message:
    """A request or response head: first line parts and headers in order."""

    first: tuple[str, str, str]
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)

    def passed_on(self) -> list[tuple[str, str]]:
        """Headers minus hop-by-hop ones, and minus those the Connection header names."""
        named = {n.strip().lower() for n in (self.get("connection") or "").split(",")}
        return [(k, v) for k, v in self.headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


class Request(Message):
    @property
    def method(self) -> str:
        return self.first[0].upper()

    @property
    def target(self) -> str:
        return self.first[1]

    @property
    def length(self) -> int | None:
        """The body's one Content-Length (`read_request` refused conflicting ones), or None."""
        return declared_length(self, 400)

    @property
    def chunked(self) -> bool:
        return self.get("transfer-encoding") is not None


def declared_length(message: Message, status: int) -> int | None:
    """The Content-Length a message declares, once however often it is repeated; BadMessage(`status`) when
    the values differ or are not a number (a proxy and a server reading different lengths is smuggling)."""
    values = {
        part.strip()
        for key, value in message.headers
        if key.lower() == "content-length"
        for part in value.split(",")
    }
    if not values:
        return None
    if len(values) > 1:
        raise BadMessage(status, "conflicting Content-Length values")
    (value,) = values
    if not (value.isascii() and value.isdigit()):
        raise BadMessage(status, "malformed Content-Length")
    return int(value)


class Response(Message):
    length: int | None = None

    @property
    def content_type(self) -> str:
        return (self.get("content-type") or "").split(";")[0].strip().lower()

    @property
    def chunked(self) -> bool:
        return self.length is None and self.get("transfer-encoding") is not None

    @property
    def close_delimited(self) -> bool:
        """The body ends when the connection does; the proxy re-frames it as chunked (see `head`)."""
        return self.length is None and self.get("transfer-encoding") is None

    def head(self) -> bytes:
        """The head passed on; a close-delimited body becomes chunked, so a cut-off shows as one."""
        lines = [" ".join(self.first), *(f"{k}: {v}" for k, v in self.passed_on()), "Connection: close"]
        if self.close_delimited:
            lines.append("Transfer-Encoding: chunked")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader, idle_s: float) -> bytes | None:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), idle_s)
    except asyncio.LimitOverrunError as exc:
        raise BadMessage(431, "the message head is too large") from exc
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise BadMessage(400, "the message head ended early") from exc


def _parse(raw: bytes) -> tuple[tuple[str, str, str], list[tuple[str, str]]]:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise BadMessage(400, "undecodable head") from exc
    first, *rest = text[:-4].split("\r\n")
    parts = first.split(" ", 2)
    if len(parts) < 2:
        raise BadMessage(400, "malformed first line")
    headers: list[tuple[str, str]] = []
    for line in rest:
        name, sep, value = line.partition(":")
        # No obsolete line folding, no whitespace before the colon: both are request-smuggling tools.
        if not sep or not name or name != name.strip() or " " in name or line[0] in " \t":
            raise BadMessage(400, "malformed header line")
        headers.append((name, value.strip()))
    return (parts[0], parts[1], parts[2] if len(parts) == 3 else ""), headers


async def read_request(reader: asyncio.StreamReader, idle_s: float) -> Request | None:
    """The next request head, or None when the client closed without sending one."""
    raw = await _read_head(reader, idle_s)
    if raw is None:
        return None
    first, headers = _parse(raw)
    request = Request(first, headers)
    # Only framings the proxy and every destination read the same way pass (RFC 9112 6.3, 11.2).
    encodings = [v for k, v in headers if k.lower() == "transfer-encoding"]
    if encodings and request.get("content-length") is not None:
        raise BadMessage(400, "both Content-Length and Transfer-Encoding")
    if encodings and (len(encodings) > 1 or encodings[0].strip().lower() != "chunked"):
        raise BadMessage(400, "the only Transfer-Encoding accepted is one 'chunked'")
    request.length  # noqa: B018 - refuses conflicting or malformed Content-Length values
    return request


async def read_response(reader: asyncio.StreamReader, idle_s: float, method: str) -> Response:
    """The response head; informational (1xx) heads are skipped."""
    while True:
        raw = await _read_head(reader, idle_s)
        if raw is None:
            raise BadMessage(502, "the server closed the connection without answering")
        first, headers = _parse(raw)
        response = Response(first, headers)
        status = first[1]
        if not status.isdigit():
            raise BadMessage(502, "the server sent a malformed status line")
        if not status.startswith("1"):
            break
    declared = declared_length(response, 502)
    if method == "HEAD" or status in ("204", "304"):
        response.length = 0
    elif declared is not None and response.get("transfer-encoding") is None:
        response.length = declared
    return response


def is_media(first: bytes) -> bool:
    """Whether a body starts as a media file or stream does: what yt-dlp streams to disk, never reads whole.

    The bytes decide (the toolkit's one sniffer, as for uploads), not the declared type, which costs a lie
    nothing. Everything else (pages, playlists, JSON, pictures, encrypted HLS segments, unknown bytes) may be
    read into memory by a client and is capped.
    """
    return sniff.sniff(first).media


def chunked_payload(raw: bytes) -> bytes:
    """The start of the data a chunked body carries, decoded from as much of it as `raw` holds."""
    payload = b""
    while raw:
        line, sep, rest = raw.partition(b"\r\n")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            break
        if not sep or size == 0:
            break
        payload += rest[:size]
        raw = rest[size + 2 :]
    return payload


def origin_request(request: Request, url: SplitResult) -> bytes:
    """The request head as the destination should see it: origin form, one request, no proxy headers."""
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    authority = url.netloc.rpartition("@")[2]
    headers = [(k, v) for k, v in request.passed_on() if k.lower() not in ("host", "content-length")]
    lines = [f"{request.method} {path} HTTP/1.1", f"Host: {authority}"]
    if request.length is not None:
        lines.append(f"Content-Length: {request.length}")
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def copy_body(
    request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle_s: float
) -> None:
    """Pass the request body on, framed as the client framed it."""
    if request.length is not None:
        left = request.length
        while left > 0:
            data = await asyncio.wait_for(reader.read(min(left, 1 << 20)), idle_s)
            if not data:
                raise BadMessage(400, "the request body ended early")
            writer.write(data)
            await writer.drain()
            left -= len(data)
    elif request.chunked:
        while True:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), idle_s)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise BadMessage(400, "malformed chunk size") from exc
            writer.write(line)
            if size == 0:
                while (trailer := await asyncio.wait_for(reader.readuntil(b"\r\n"), idle_s)) != b"\r\n":
                    writer.write(trailer)
                writer.write(b"\r\n")
                break
            writer.write(await asyncio.wait_for(reader.readexactly(size + 2), idle_s))
            await writer.drain()
    await writer.drain()


def split_authority(target: str, *, default_port: int) -> tuple[str, int]:
    """host and port of a CONNECT target ("example.com:443", "[2001:db8::1]:443")."""
    host, sep, port = target.rpartition(":")
    if not sep or host.endswith(":") or (host.count(":") and not host.startswith("[")):
        host, port = target, str(default_port)
    if not port.isdigit() or not host.strip("[]") or int(port) > 65535:
        raise BadMessage(400, "malformed CONNECT target")
    return host.strip("[]"), int(port)


async def answer(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    """A short plain-text answer from the proxy itself."""
    reasons = {
        400: "Bad Request",
        403: "Forbidden",
        431: "Request Header Fields Too Large",
        502: "Bad Gateway",
    }
    body = (text + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()
