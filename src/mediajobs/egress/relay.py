"""Moving bytes between two connections of the proxy once it has nothing left to inspect.

Media bodies and https tunnels are most of what an import moves. Where Linux offers splice(2) they go from
socket to socket through a pipe inside the kernel: no copy through Python, a few system calls per MiB. The
sockets are taken from asyncio's transports first (reading paused, whatever asyncio already read passed on,
its write buffer flushed), then driven through duplicates of their descriptors, so asyncio never sees a
descriptor it does not own change hands.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Coroutine
from typing import Any

CHUNK = 1 << 20
PIPE_BYTES = 1 << 20
SPLICE = hasattr(os, "splice")
_F_SETPIPE_SZ = 1031


async def read(reader: asyncio.StreamReader, idle_s: float) -> bytes:
    """The next bytes from `reader` (b"" at its end), waiting at most `idle_s`."""
    return await asyncio.wait_for(reader.read(CHUNK), idle_s)


class Activity:
    """When bytes last moved through a tunnel, in either direction."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    async def watch(self, idle_s: float) -> None:
        while (left := self.last + idle_s - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 1.0))


async def flushed(writer: asyncio.StreamWriter) -> int:
    """A duplicate of `writer`'s socket, once everything asyncio buffered for it has been sent."""
    writer.transport.set_write_buffer_limits(0)  # drain() now waits until the buffer is empty
    await writer.drain()
    return os.dup(writer.transport.get_extra_info("socket").fileno())


async def taken_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, bytes]:
    """`reader`'s socket, duplicated, and the bytes asyncio already read from it; asyncio reads no more."""
    transport = writer.transport
    assert isinstance(transport, asyncio.Transport)  # a socket's, which reads too
    transport.pause_reading()
    await asyncio.sleep(0)  # a read the loop queued before the pause lands in `reader` first
    reader.feed_eof()
    pending = await reader.read()  # never waits (the end is fed), so nothing can arrive meanwhile...
    transport.pause_reading()  # ...but emptying the buffer may have resumed reading
    return await flushed(writer), pending


async def splice(
    source: int, dest: int, *, count: int | None, idle_s: float | None, activity: Activity | None = None
) -> int:
    """Move bytes from `source` to `dest` until `source` ends or `count` have moved; the number moved."""
    pipe_out, pipe_in = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # a bigger pipe moves more per call; the default 64 KiB still works
        fcntl.fcntl(pipe_in, _F_SETPIPE_SZ, PIPE_BYTES)
    moved = 0
    try:
        while count is None or moved < count:
            want = PIPE_BYTES if count is None else min(PIPE_BYTES, count - moved)
            held = await _splice(source, pipe_in, want, source, writable=False, idle_s=idle_s)
            if held == 0:
                break
            if activity is not None:
                activity.last = time.monotonic()
            while held:
                sent = await _splice(pipe_out, dest, held, dest, writable=True, idle_s=idle_s)
                held -= sent
                moved += sent
    finally:
        os.close(pipe_out)
        os.close(pipe_in)
    return moved


async def _splice(
    source: int, dest: int, size: int, wait_on: int, *, writable: bool, idle_s: float | None
) -> int:
    while True:
        try:
            return os.splice(source, dest, size, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            await _ready(wait_on, writable=writable, idle_s=idle_s)


async def _ready(fd: int, *, writable: bool, idle_s: float | None) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writable:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(ready, idle_s)
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, activity: Activity) -> None:
    while data := await reader.read(CHUNK):
        activity.last = time.monotonic()
        writer.write(data)
        await writer.drain()


async def _spliced(source: int, dest: int, activity: Activity) -> None:
    with contextlib.suppress(OSError):  # a reset on either side ends the tunnel like a close
        await splice(source, dest, count=None, idle_s=None, activity=activity)


async def both_ways(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
    idle_s: float,
) -> None:
    """Relay until either side closes, or nothing has moved either way for `idle_s`."""
    activity = Activity()
    if SPLICE:
        a, a_pending = await taken_over(a_reader, a_writer)
        b, b_pending = await taken_over(b_reader, b_writer)
        try:
            b_writer.write(a_pending)
            a_writer.write(b_pending)
            await asyncio.gather(b_writer.drain(), a_writer.drain())
            await _race(_spliced(a, b, activity), _spliced(b, a, activity), activity.watch(idle_s))
        finally:
            os.close(a)
            os.close(b)
    else:
        await _race(
            _pipe(a_reader, b_writer, activity), _pipe(b_reader, a_writer, activity), activity.watch(idle_s)
        )


async def _race(*jobs: Coroutine[Any, Any, None]) -> None:
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
