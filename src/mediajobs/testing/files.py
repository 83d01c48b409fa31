"""A directory served over HTTP on 127.0.0.1, with the awkward answers real servers give (for imports)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Served:
    """A directory served over HTTP on 127.0.0.1, plus a few special routes."""

    root: Path
    port: int
    # How each /chunked/ or /slow/ body ended, by path: "whole" (every byte sent) or "cut" (the client left).
    transfers: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"


class _Handler(SimpleHTTPRequestHandler):
    """Static files with Range support, plus special routes.

    /redirect?to=URL (302), /loop (302 to itself), /status/CODE, /chunked/NAME (no Content-Length),
    /slow/NAME (chunked, 32 KiB every 50 ms), /get-only/NAME (405 to HEAD).
    """

    transfers: dict[str, str]

    def __init__(self, *args: Any, transfers: dict[str, str], **kwargs: Any) -> None:
        self.transfers = transfers
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def _dispatch(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        if parts.path in ("/redirect", "/loop"):
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", parse_qs(parts.query)["to"][0] if parts.query else "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path.startswith("/status/"):
            self.send_error(int(parts.path.removeprefix("/status/")))
        elif parts.path.startswith("/get-only/"):
            if head:
                self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)
            else:
                self.path = parts.path.removeprefix("/get-only")
                super().do_GET()
        elif parts.path.startswith(("/chunked/", "/slow/")):
            slow = parts.path.startswith("/slow/")
            name = parts.path.split("/", 2)[2]
            self._send_chunked(
                parts.path, Path(self.directory) / name, head=head, pause_s=0.05 if slow else 0.0
            )
        elif "Range" in self.headers and not head:
            self._send_range(Path(self.translate_path(parts.path)))
        elif head:
            super().do_HEAD()
        else:
            super().do_GET()

    def _send_chunked(self, route: str, path: Path, *, head: bool, pause_s: float) -> None:
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if head:
            return
        try:
            with path.open("rb") as f:
                while chunk := f.read(32768):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    time.sleep(pause_s)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            self.transfers[route] = "whole"
        except (BrokenPipeError, ConnectionResetError):  # the client gave up, as a capped download does
            self.transfers[route] = "cut"

    def _send_range(self, path: Path) -> None:
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers["Range"].strip())
        if not path.is_file() or not match:
            super().do_GET()
            return
        size = path.stat().st_size
        start = int(match.group(1) or 0)
        end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
        if start >= size:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with path.open("rb") as f:
            f.seek(start)
            self.wfile.write(f.read(end - start + 1))


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[Served]:
    """A threaded HTTP server on an ephemeral port serving `root` (with the special routes)."""

    transfers: dict[str, str] = {}

    def handler(*args: Any, **kwargs: Any) -> _Handler:
        return _Handler(*args, directory=str(root), transfers=transfers, **kwargs)

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Served(root=root, port=server.server_address[1], transfers=transfers)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# How a Matroska file begins. Uploads whose first bytes are not media are refused (415), so bytes that stand
# in for a file (random data testing transfers, not decoding) start with this.
MEDIA_MAGIC = b"\x1a\x45\xdf\xa3"


def media_like(size: int) -> bytes:
    """`size` random bytes that an upload takes for media (they start as a Matroska file does)."""
    return MEDIA_MAGIC + os.urandom(max(0, size - len(MEDIA_MAGIC)))
