"""A webhook receiver (and an "internal" server) as real HTTP servers on loopback addresses."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A custom answer: writes whatever it likes on the handler's socket (`handler.wfile`).
Behaviour = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Received:
    """One request as the receiver got it (header names lower-cased)."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every request; answers each path from its script (a list of statuses, the last repeats)."""

    host: str
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def answer(self, path: str) -> int:
        with self.lock:
            seen = sum(1 for r in self.requests if r.path == path)
            script = self.scripts.get(path, [200])
            return script[min(seen - 1, len(script) - 1)]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _record(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            if self.path in receiver.behaviours:
                self.close_connection = True
                with contextlib.suppress(OSError):  # the client hung up on it: that is the point
                    receiver.behaviours[self.path](self)
                return
            if self.path in receiver.redirects:
                self.send_response(302)
                self.send_header("Location", receiver.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = receiver.answer(self.path)
            reply = f"answered {status}".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_POST = _record
        do_GET = _record

    return Handler


@contextlib.contextmanager
def serve(host: str) -> Iterator[Receiver]:
    receiver = Receiver(host)
    server = ThreadingHTTPServer((host, 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
