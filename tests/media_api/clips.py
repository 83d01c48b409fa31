"""Clips generated once per session with ffmpeg's lavfi sources."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from mediajobs import process
from tests.clips import generate_clip

CLIPS: dict[str, dict[str, Any]] = {
    # The everyday asset: small enough that the whole pipeline takes about a second.
    "small": {"duration": 4.0, "width": 640, "height": 360, "fps": 25},
    # Long enough to watch a transcode progress (three rungs: 720p, 480p, 360p) or to cancel one.
    "long": {"duration": 12.0, "width": 1280, "height": 720, "fps": 25},
    # About 2 MB: served slowly (640 KiB/s) it keeps an import busy for a few seconds.
    "medium": {"duration": 10.0, "width": 640, "height": 360, "fps": 25},
    # 1080p: masking it takes seconds, time enough to cancel the mask job while ffmpeg runs.
    "big": {"duration": 12.0, "width": 1920, "height": 1080, "fps": 25},
}


class Clips:
    """Clips generated once per session, by name (see CLIPS)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Path:
        out = self.directory / f"{name}.mp4"
        with self._lock:
            if not out.exists():
                generate_clip(out, **CLIPS[name])
        return out

    def noisy(self) -> Path:
        """A 4 s 640x360 clip of film grain: incompressible, so ~10 MB, more than one 8 MiB S3 part."""
        out = self.directory / "noisy.mp4"
        with self._lock:
            if not out.exists():
                args = [
                    "ffmpeg",
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=640x360:rate=25:duration=4",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000:duration=4",
                    "-vf",
                    "noise=alls=60:allf=t",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    "-t",
                    "4",
                    str(out),
                ]
                process.run(args)
        return out

    def stream_only(self, kind: str) -> Path:
        """A 4 s clip with only an audio (`audio`, .m4a) or only a video (`video`, .mp4) stream."""
        out = self.directory / ("song.m4a" if kind == "audio" else "silent.mp4")
        with self._lock:
            if not out.exists():
                generate_clip(
                    out, duration=4.0, width=640, height=360, audio=kind == "audio", video=kind == "video"
                )
        return out

    def file(self, name: str, data: bytes) -> Path:
        out = self.directory / name
        out.write_bytes(data)
        return out
