"""A TCP proxy on loopback that cuts connections after a number of bytes and spreads them over several APIs.

It sees bytes, not HTTP: a cut is what a dropped Wi-Fi does to an upload (both directions closed mid-body),
and connections alternate between the upstreams as a load balancer would send them to API processes.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import Counter

CHUNK = 64 * 1024
OFFSET = re.compile(rb"\r\nupload-offset: *([0-9]+)\r\n", re.IGNORECASE)


class CuttingProxy:
    """Listens on 127.0.0.1; the next connection to send more than `cuts[0]` bytes upstream is cut there, and
    so on down the list. Connections go to the upstream ports in turn."""

    def __init__(
        self, upstreams: list[int], cuts: list[int] | None = None, *, bytes_per_s: float | None = None
    ) -> None:
        self.upstreams = upstreams
        # A slow link (client to server), so that a test can act while an upload is under way.
        self.bytes_per_s = bytes_per_s
        self.cuts = list(cuts or [])
        self.cut_count = 0
        self.forwarded = 0  # bytes sent upstream, all connections
        self.offsets: list[int] = []  # the Upload-Offset of every tus request seen going upstream
        self.served: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._next = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = False
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                port = self.upstreams[self._next % len(self.upstreams)]
                self._next += 1
                self.served[port] += 1
            threading.Thread(target=self._serve, args=(client, port), daemon=True).start()

    def _serve(self, client: socket.socket, port: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._open |= {client, upstream}
        back = threading.Thread(target=self._pump_back, args=(upstream, client), daemon=True)
        back.start()
        sent = 0
        try:
            while chunk := client.recv(CHUNK if self.bytes_per_s is None else 16 * 1024):
                if self.bytes_per_s:  # read at that rate, whenever the connection was opened (keep-alive)
                    time.sleep(len(chunk) / self.bytes_per_s)
                with self._lock:
                    budget = self.cuts[0] if self.cuts else None
                if budget is not None and sent + len(chunk) >= budget:
                    upstream.sendall(chunk[: budget - sent])
                    self._count(budget - sent)
                    with self._lock:
                        if self.cuts and self.cuts[0] == budget:
                            self.cuts.pop(0)
                            self.cut_count += 1
                    break  # cut: both sides closed below, mid-body
                upstream.sendall(chunk)
                sent += len(chunk)
                self._count(len(chunk))
                found = [int(m) for m in OFFSET.findall(chunk)]
                if found:
                    with self._lock:
                        self.offsets += found
            else:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)
                back.join()
        except OSError:
            pass
        finally:
            self._close(client, upstream)

    def _count(self, n_bytes: int) -> None:
        with self._lock:
            self.forwarded += n_bytes

    def _pump_back(self, upstream: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := upstream.recv(CHUNK):
                client.sendall(chunk)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._open.discard(sock)

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()
        with self._lock:
            left = list(self._open)
        self._close(*left)
