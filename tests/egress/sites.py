"""Web servers for egress tests: an "attacker" on 127.0.0.2 (made public by the policy) and an "internal" one
on 127.0.0.1, each counting every connection it accepts and every byte it sends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Body = bytes | Callable[[], Iterator[bytes]]


@dataclass
class Route:
    body: Body = b""
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # What HEAD answers, when it differs from GET (a redirect given only to GET).
    head_status: int | None = None
    head_headers: dict[str, str] | None = None


class Site:
    """A threaded HTTP server on `host`:ephemeral serving `routes`."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.connections = 0
        self.requests: list[tuple[str, str, bytes]] = []
        self.sent_bytes = 0
        self._lock = threading.Lock()
        site = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                with site._lock:
                    site.connections += 1
                super().process_request(request, client_address)

        self.server = Server((host, 0), _handler(self))
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(
        self, path: str, body: Body = b"", content_type: str = "application/octet-stream", **kw: Any
    ) -> str:
        self.routes[path] = Route(body, content_type, **kw)
        return self.url(path)

    def start(self) -> Site:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_POST(self) -> None:
            self._answer(head=False)

        def _answer(self, *, head: bool) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body_in = self.rfile.read(length) if length else b""
            with site._lock:
                site.requests.append((self.command, self.path, body_in))
            route = site.routes.get(self.path.split("?")[0])
            if route is None:
                route = Route(b"not here\n", "text/plain", status=404)
            status = route.head_status if head and route.head_status else route.status
            headers = route.head_headers if head and route.head_headers is not None else route.headers
            self.send_response(status)
            self.send_header("Content-Type", route.content_type)
            for name, value in headers.items():
                self.send_header(name, value)
            if isinstance(route.body, bytes):
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if not head:
                    self._write(route.body)
                return
            chunked = headers.get("Transfer-Encoding") == "chunked"  # else the body ends with the connection
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if not head:
                with contextlib.suppress(OSError):
                    for chunk in route.body():
                        self._write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                    if chunked:
                        self._write(b"0\r\n\r\n")

        def _write(self, data: bytes) -> None:
            self.wfile.write(data)
            with site._lock:
                site.sent_bytes += len(data)

    return Handler


@contextlib.contextmanager
def running(host: str) -> Iterator[Site]:
    site = Site(host).start()
    try:
        yield site
    finally:
        site.stop()
