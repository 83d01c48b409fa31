"""Files an attacker would upload, made with real ffmpeg, and a trap that tells whether a path was opened."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from mediajobs import process

FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y"]


class Trap:
    """A FIFO that records whether anything opened it for reading.

    Opening a FIFO for writing blocks until a reader opens it, so a thread blocked in that open wakes up
    exactly when some process opens the path: no timing, no atime mount options involved.
    """

    def __init__(self, path: Path, payload: bytes = b"") -> None:
        self.path = path
        self.payload = payload
        self.opened = threading.Event()
        self._closing = False
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        with open(self.path, "wb") as fifo:
            if self._closing:
                return
            self.opened.set()
            with contextlib.suppress(BrokenPipeError):
                fifo.write(self.payload)

    def close(self) -> None:
        """Release the waiting thread (by opening the FIFO ourselves) and remove it."""
        self._closing = True
        if not self.opened.is_set():
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def trap(path: Path, payload: bytes = b"") -> Iterator[Trap]:
    watched = Trap(path, payload)
    try:
        yield watched
    finally:
        watched.close()


def hls_playlist(*segments: str) -> str:
    """A VOD media playlist listing `segments` (paths or URLs), two seconds each."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    for segment in segments:
        lines += ["#EXTINF:2.0,", segment]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


def ffconcat(*files: str) -> str:
    """An ffconcat script listing `files`."""
    return "ffconcat version 1.0\n" + "".join(f"file '{f}'\n" for f in files)


def ts_clip(out: Path) -> Path:
    """One second of MPEG-TS video, what a playlist segment holds."""
    args = [*FFMPEG, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1"]
    process.run([*args, "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", str(out)])
    return out


def gap_clip(out: Path, *, gap_s: float, frames: int = 2, size: str = "320x240") -> Path:
    """`frames` frames of a still picture `gap_s` apart: ~1.5 KB whose duration is frames x gap."""
    args = [*FFMPEG, "-f", "lavfi", "-i", f"color=c=red:size={size}:rate=1:duration={frames}"]
    args += ["-vf", f"setpts='N*{gap_s:g}/TB'", "-fps_mode", "passthrough"]
    process.run([*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)])
    return out


def claiming_mkv(out: Path, *, claimed_s: float, real_s: float, size: str = "160x120") -> Path:
    """A Matroska file whose header says it lasts `claimed_s` while its frames last `real_s`."""
    args = [*FFMPEG, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10:duration={real_s:g}"]
    process.run([*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)])
    data = bytearray(out.read_bytes())
    # Segment Info's Duration element (ID 0x4489, an 8-byte float in TimecodeScale units, 1 ms by default).
    at = data.find(b"\x44\x89\x88")
    assert at > 0, "no 8-byte Duration element in the mkv header"
    data[at + 3 : at + 11] = struct.pack(">d", claimed_s * 1000.0)
    out.write_bytes(bytes(data))
    return out


def colour_clip(out: Path, *, size: str, frames: int = 1) -> Path:
    """A few frames of a flat colour at any size (cheap to encode even when huge)."""
    args = [*FFMPEG, "-f", "lavfi", "-i", f"color=c=blue:size={size}:rate=25", "-frames:v", str(frames)]
    process.run([*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)])
    return out


def growing_clip(out: Path, *, small: str = "64x64", small_s: float = 2.0, large: str, frames: int) -> Path:
    """MPEG-TS H.264 that probes as `small` (its first `small_s`), then holds `frames` frames of `large`.

    Two encodes joined at the TS level: the stream's new SPS changes the picture size mid-stream.
    """
    parts = [out.with_name(f"{out.stem}-small.ts"), out.with_name(f"{out.stem}-large.ts")]
    sources = [f"testsrc2=size={small}:rate=25:duration={small_s:g}", f"color=c=gray:size={large}:rate=25"]
    for part, source, limit in zip(parts, sources, [[], ["-frames:v", str(frames)]], strict=True):
        # 2 s GOPs: the stream looks standard (its own stream would be copied for fast start).
        args = [*FFMPEG, "-f", "lavfi", "-i", source, *limit, "-c:v", "libx264", "-g", "50"]
        args += ["-preset", "ultrafast"]
        process.run([*args, "-pix_fmt", "yuv420p", "-f", "mpegts", str(part)])
    listing = out.with_name(f"{out.stem}.ffconcat")
    listing.write_text(ffconcat(*(p.name for p in parts)))
    process.run([*FFMPEG, "-f", "concat", "-i", str(listing), "-c", "copy", "-f", "mpegts", str(out)])
    for path in (*parts, listing):
        path.unlink()
    return out


def covered_song(out: Path, *, cover: str) -> Path:
    """Two seconds of MP3 with a JPEG cover picture of size `cover` (an attached picture, not video)."""
    picture = f"color=c=red:size={cover}:duration=1"
    args = [*FFMPEG, "-f", "lavfi", "-i", "sine=duration=2", "-f", "lavfi", "-i", picture]
    args += ["-map", "0:a", "-map", "1:v", "-frames:v", "1", "-c:v", "mjpeg"]
    process.run([*args, "-disposition:v", "attached_pic", "-c:a", "libmp3lame", str(out)])
    return out


class Listener:
    """A TCP port on 127.0.0.1 that only counts who connected (the kernel completes the handshake)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self._count = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def hits(self) -> int:
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return self._count
            conn.close()
            self._count += 1

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def listener() -> Iterator[Listener]:
    port = Listener()
    try:
        yield port
    finally:
        port.close()
