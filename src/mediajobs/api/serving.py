"""How the API's HTTP server treats connections before any request reaches the app (slowloris and floods).

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but nothing bounds a connection that
never finishes its request head: 20 (or 200) sockets dripping a byte now and then stay open for ever. This
protocol (uvicorn's httptools one, with three bounds) closes a connection whose head is not complete within
`request_head_timeout_s` (408), refuses a head over `HEAD_BYTES` (431), and refuses a client address more
than `max_connections_per_client` open connections (429). Behind a reverse proxy every connection comes from
the proxy: set the per-client limit to 0 there and let the proxy limit its clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mediajobs.config import Settings

log = logging.getLogger(__name__)
HEAD_BYTES = 64 * 1024
# After a refusal the answer is sent and the sending side shut (FIN); what the client still sends is read and
# dropped for up to this long before the close. Closed at once, a socket with unread bytes sends a reset,
# and a client still writing (a slow head, one byte at a time) lost the answer it had not read yet.
LINGER_S = 2.0
REASONS = {408: "Request Timeout", 429: "Too Many Requests", 431: "Request Header Fields Too Large"}


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request head, and a cap on the
    connections one client address may hold open. Configured per server by `protocol_for`."""

    head_timeout_s: ClassVar[float] = 10.0
    per_client: ClassVar[int] = 0
    open_per_client: ClassVar[dict[str, int]] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._refused = False
        self._awaiting_head = True
        self._head_bytes = 0
        self._counted: str | None = None
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        if address is not None and self.per_client > 0:
            held = self.open_per_client.get(address, 0)
            if held >= self.per_client:
                log.warning("refused a connection from %s: it holds %d open already", address, held)
                self._refuse(
                    429,
                    f"too many open connections from your address (at most {self.per_client}); "
                    "close some, or reuse one (keep-alive)",
                )
                return
            self.open_per_client[address] = held + 1
            self._counted = address
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger is not None:
            self._linger.cancel()
        if self._counted is not None:
            left = self.open_per_client.get(self._counted, 1) - 1
            if left > 0:
                self.open_per_client[self._counted] = left
            else:
                self.open_per_client.pop(self._counted, None)
            self._counted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # answered already: read and dropped until the close
            return
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after this chunk (a chunk that also ended the head does not count against it).
        if self._awaiting_head and self._head_bytes > HEAD_BYTES and not self.transport.is_closing():
            self._refuse(431, f"the request head is over {HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        self._awaiting_head = True
        self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._head_timer is None and self.head_timeout_s > 0:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(408, f"the request head did not arrive within {self.head_timeout_s:g} s")
        else:  # an answer is still being written: nothing can be added to it
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer problem+json and close (a lingering close: LINGER_S); what the client sends meanwhile is
        dropped, never parsed."""
        self._disarm()
        problem: dict[str, Any] = {"type": "about:blank", "title": REASONS[status], "status": status}
        body = json.dumps({**problem, "detail": detail}).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("latin-1") + body)
        self._refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


def protocol_for(settings: Settings) -> type[GuardedHttpProtocol]:
    """The protocol class for one server, with its own limits and its own count of open connections."""
    return type(
        "ConfiguredHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "head_timeout_s": settings.request_head_timeout_s,
            "per_client": settings.max_connections_per_client,
            "open_per_client": {},
        },
    )
