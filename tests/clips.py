"""Clips for the tests, generated with ffmpeg's lavfi sources (nothing binary is committed)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from mediajobs import process


def generate_clip(
    out: Path,
    *,
    duration: float = 2.0,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    audio: bool = True,
    video: bool = True,
    black_s: float = 0.0,
    rotate: int | None = None,
    gop_s: float = 2.0,
) -> Path:
    """Write a small H.264/AAC clip from lavfi test sources (testsrc2 picture, 440 Hz tone) to `out`.

    Keyframes every `gop_s` seconds, as cameras and encoders write them (x264 alone would put one every 250
    frames).
    """
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={duration}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
    if video:
        if black_s:
            # A black intro, as many real videos have: a thumbnail taken at t=0 would be useless.
            args += ["-vf", f"drawbox=color=black:t=fill:enable='lt(t,{black_s})'"]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        args += ["-g", str(max(1, round(fps * gop_s)))]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    encoded = out.with_name(f"unrotated-{out.name}") if rotate is not None else out
    process.run([*args, "-t", str(duration), str(encoded)])
    if rotate is not None:
        # ffmpeg 5.1 drops the rotate tag when encoding; a stream copy turns it into a display matrix.
        remux = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(encoded), "-c", "copy"]
        process.run([*remux, "-metadata:s:v:0", f"rotate={rotate}", str(out)])
        encoded.unlink()
    return out


class MakeClip(Protocol):
    def __call__(
        self,
        *,
        duration: float = ...,
        width: int = ...,
        height: int = ...,
        fps: int = ...,
        audio: bool = ...,
        video: bool = ...,
        black_s: float = ...,
        rotate: int | None = ...,
        name: str | None = ...,
    ) -> Path: ...
