"""Clips whose frames carry their own index, and reading the index back from any picture of them (a frame,
a scaled still, a storyboard tile): media judged by its content."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from mediajobs import process
from tests.toolkit.frames import INDEX_BITS, INDEX_COLUMN, ffmpeg

FPS = 25
SIZE = (320, 240)


def counter_clip(path: Path, *, seconds: float = 12.0, standard: bool = True, audio: bool = True) -> Path:
    """Each frame shows its index in binary (10 white/black columns, least significant on the left).

    `standard`: H.264 4:2:0 with a keyframe every 2 s, so its own stream is the top rendition (copied, cut at
    its keyframes); otherwise 4:4:4, which browsers do not play as it is, so every rendition is encoded.
    """
    if path.exists():
        return path
    w, h = SIZE
    bits = ",".join(
        f"drawbox=x={k * INDEX_COLUMN}:y=0:w={INDEX_COLUMN}:h=ih:color=white:t=fill"
        f":enable='mod(floor(n/{1 << k}),2)'"
        for k in range(INDEX_BITS)
    )
    inputs = ["-f", "lavfi", "-i", f"color=c=black:s={w}x{h}:r={FPS}:d={seconds:g},{bits}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds:g}"]
    pix = "yuv420p" if standard else "yuv444p"
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", pix, "-g", str(2 * FPS)]
    if audio:
        codecs += ["-c:a", "aac", "-b:a", "64k"]
    partial = path.with_name(f"partial-{path.name}")
    ffmpeg(*inputs, *codecs, "-t", f"{seconds:g}", partial)
    partial.rename(path)
    return path


def gray(data: bytes, suffix: str = ".png") -> np.ndarray:
    """A picture (any format ffmpeg reads) as grey levels, shape (height, width)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"in{suffix}"
        src.write_bytes(data)
        w, h = picture_size(src)
        raw = Path(tmp) / "out.raw"
        ffmpeg("-i", src, "-frames:v", "1", "-pix_fmt", "gray", "-f", "rawvideo", raw)
        return np.fromfile(raw, dtype=np.uint8)[: w * h].reshape(h, w)


def picture_size(path: Path) -> tuple[int, int]:
    done = process.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "json", str(path)],
        capture_stdout=True,
    )
    stream = json.loads(done.stdout or "{}")["streams"][0]
    return int(stream["width"]), int(stream["height"])


def index_of(picture: np.ndarray) -> int:
    """The frame index drawn by `counter_clip`, read from a picture of any size showing the whole frame."""
    row = picture[picture.shape[0] // 2]
    scale = picture.shape[1] / SIZE[0]
    bits = [row[int((k * INDEX_COLUMN + INDEX_COLUMN / 2) * scale)] > 128 for k in range(INDEX_BITS)]
    return sum(1 << k for k, bit in enumerate(bits) if bit)


def frame_shown_at(t: float) -> int:
    """The index of the frame a player shows at `t` seconds of a counter clip (frames at k / FPS)."""
    return int(t * FPS + 1e-6)
