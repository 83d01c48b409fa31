"""A small forward proxy that decides, at connect time, whether a destination may be reached.

It resolves every destination itself, checks every address the name resolves to, and connects to the exact
address it checked: a name that answers differently on a second lookup (DNS rebinding) never gets that second
lookup. Plain-HTTP requests (absolute form) are forwarded one per connection, with the bodies of non-media
responses capped; CONNECT tunnels (https) are relayed as they are. It runs on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mediajobs.egress import http, relay
from mediajobs.egress.policy import IPAddress, Policy

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, literal addresses included (raises OSError when none)."""
    with contextlib.suppress(ValueError):
        return [ipaddress.ip_address(host)]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # Scoped IPv6 results carry "%iface"; the address part is what the checks look at.
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


@dataclass(frozen=True)
class ProxyLimits:
    """How much the proxy lets through: head sizes, non-media bodies, and how long anything may idle."""

    head_bytes: int = 64 * 1024
    text_bytes: int = 8 * 1024 * 1024
    idle_s: float = 60.0
    connect_s: float = 15.0


class Refused(Exception):
    """The destination is not allowed; the client gets a 403."""


class Unreachable(Exception):
    """An allowed destination could not be reached; the client gets a 502."""


@dataclass
class EgressProxy:
    """The proxy, listening on 127.0.0.1 (ephemeral port) and on any listener handed to `serve`."""

    policy: Policy
    resolver: Resolver = system_resolver
    limits: ProxyLimits = field(default_factory=ProxyLimits)
    refused: list[str] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []

    def start(self) -> None:
        """Start serving in a thread of its own; returns once both listeners are open."""
        ready = threading.Event()
        failed: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failed), name="egress-proxy", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        if failed:
            raise failed[0]

    def serve(self, listener: socket.socket) -> None:
        """Answer on `listener` too (a jail's, inside its namespace) until the proxy stops."""
        assert self._loop is not None, "the proxy is not running"
        started = asyncio.run_coroutine_threadsafe(self._listen(sock=listener), self._loop)
        started.result(10)

    async def _listen(
        self, host: str | None = None, port: int | None = None, sock: socket.socket | None = None
    ) -> asyncio.Server:
        server = await asyncio.start_server(self._accept, host, port, sock=sock, limit=self.limits.head_bytes)
        self._servers.append(server)
        return server

    def stop(self) -> None:
        """Close the listeners and every open connection, then end the thread."""
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, ready: threading.Event, failed: list[BaseException]) -> None:
        try:
            asyncio.run(self._main(ready))
        except BaseException as exc:
            failed.append(exc)
            log.exception("egress proxy stopped")
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        main = await self._listen(host="127.0.0.1", port=0)
        self.port = main.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, http.BadMessage):
            pass  # the client or the destination went away, or spoke nonsense: nothing left to answer
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await http.read_request(reader, self.limits.idle_s)
        except http.BadMessage as exc:
            await http.answer(writer, exc.status, str(exc))
            return
        if request is None:
            return
        try:
            if request.method == "CONNECT":
                host, port = http.split_authority(request.target, default_port=443)
                upstream = await self._open(host, port)
                await self._tunnel(reader, writer, upstream)
            else:
                await self._forward(request, reader, writer)
        except Refused as exc:
            self.refused.append(str(exc))
            log.warning("egress refused: %s", exc)
            await http.answer(writer, 403, "this destination may not be reached")
        except Unreachable as exc:
            self.unreachable.append(str(exc))
            await http.answer(writer, 502, str(exc))

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to `host`:`port` through an address that passed the policy; no second lookup."""
        host = host.strip("[]")
        if (why := self.policy.port_refusal(port)) is not None:
            raise Refused(f"{host}:{port}: {why}")
        try:
            addresses = await asyncio.wait_for(self.resolver(host, port), self.limits.connect_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise Unreachable(f"could not resolve {host}: no such host") from exc
        if not addresses:
            raise Unreachable(f"could not resolve {host}: no such host")
        # Every address must pass: a name that also resolves to 10.0.0.1 could be answered from there.
        for address in addresses:
            if (why := self.policy.address_refusal(address)) is not None:
                raise Refused(f"{host}:{port} resolves to {address} ({why})")
        last = "no address"
        for address in addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, limit=self.limits.head_bytes),
                    self.limits.connect_s,
                )
            except TimeoutError:
                last = "timed out"
            except OSError as exc:
                last = (
                    "connection refused"
                    if isinstance(exc, ConnectionRefusedError)
                    else exc.strerror or str(exc)
                )
        raise Unreachable(f"could not connect to {host}:{port}: {last}")

    async def _tunnel(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        up_reader, up_writer = upstream
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await relay.both_ways(reader, writer, up_reader, up_writer, self.limits.idle_s)
        finally:
            up_writer.close()

    async def _forward(
        self, request: http.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        parts = urlsplit(request.target)
        scheme = parts.scheme.lower()
        if scheme != "http":
            if scheme:
                raise Refused(f"{scheme}:// is not http (https goes through CONNECT)")
            await http.answer(writer, 400, "a proxy request needs an absolute http:// URL")
            return
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise http.BadMessage(400, "bad port") from exc
        if not parts.hostname:
            await http.answer(writer, 400, "the URL has no host")
            return
        up_reader, up_writer = await self._open(parts.hostname, port)
        try:
            up_writer.write(http.origin_request(request, parts))
            await http.copy_body(request, reader, up_writer, self.limits.idle_s)
            response = await http.read_response(up_reader, self.limits.idle_s, request.method)
            await self._relay_response(response, (up_reader, up_writer), writer, request.target)
        finally:
            up_writer.close()

    async def _relay_response(
        self,
        response: http.Response,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        writer: asyncio.StreamWriter,
        url: str,
    ) -> None:
        up_reader, up_writer = upstream
        first = await self._first_bytes(response, up_reader)
        payload = http.chunked_payload(first) if response.chunked else first
        # Only a body that starts as media may be of any size; whatever it says it is does not count.
        cap = None if http.is_media(payload) else self.limits.text_bytes
        if cap is not None and response.length is not None and response.length > cap:
            self.cut_off.append(f"{url}: a {response.length} byte {response.content_type or 'page'}")
            await http.answer(writer, 502, f"non-media responses are limited to {cap} bytes")
            return
        writer.write(response.head())
        if cap is None and relay.SPLICE and not response.close_delimited:
            await self._splice_body(response, first, up_reader, up_writer, writer)
            return
        await writer.drain()
        sent = 0
        data = first
        chunked = response.close_delimited
        while data:
            sent += len(data)
            if cap is not None and sent > cap:
                self.cut_off.append(f"{url}: a {response.content_type or 'page'} over {cap} bytes")
                return  # closing mid-body tells the client the response is incomplete
            writer.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
            await writer.drain()
            if response.length is not None and sent >= response.length:
                return
            data = await relay.read(up_reader, self.limits.idle_s)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def _first_bytes(self, response: http.Response, reader: asyncio.StreamReader) -> bytes:
        """Enough of the body to tell media from the rest (less when the body is shorter), unsent yet."""
        want = http.SNIFF_BYTES if response.length is None else min(http.SNIFF_BYTES, response.length)
        first = b""
        while len(http.chunked_payload(first) if response.chunked else first) < want:
            data = await relay.read(reader, self.limits.idle_s)
            if not data:
                break
            first += data
            if response.chunked and first.endswith(b"0\r\n\r\n"):
                break  # the last chunk: a short chunked body
        return first

    async def _splice_body(
        self,
        response: http.Response,
        first: bytes,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        writer: asyncio.StreamWriter,
    ) -> None:
        """The rest of a body nobody needs to look at, from socket to socket inside the kernel."""
        source, pending = await relay.taken_over(up_reader, up_writer)
        try:
            writer.write(first + pending)
            dest = await relay.flushed(writer)
            try:
                left = None if response.length is None else response.length - len(first) - len(pending)
                if left is None or left > 0:
                    await relay.splice(source, dest, count=left, idle_s=self.limits.idle_s)
            finally:
                os.close(dest)
        finally:
            os.close(source)
