"""Decode test outputs into numpy arrays (pictures and sound), always through the project's process runner."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import numpy as np

from mediajobs import process

AUDIO_RATE = 48_000
# Frame indices are drawn as 10 bits, one 32-pixel column each, least significant on the left.
INDEX_BITS = 10
INDEX_COLUMN = 32


def ffmpeg(*args: str | Path) -> None:
    process.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)])


def _decode(args: list[str], dtype: type[np.generic]) -> np.ndarray:
    # process.run hands stdout over as text lines, so raw samples go through a file instead.
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "decoded.raw"
        ffmpeg(*args, raw)
        return np.fromfile(raw, dtype=dtype)


def frame_at(path: Path, t: float, width: int, height: int) -> np.ndarray:
    """The first frame at or after `t` seconds as RGB, shape (height, width, 3), int16 so differences fit."""
    data = _decode(
        ["-ss", f"{t:.6f}", "-i", str(path), "-frames:v", "1", "-pix_fmt", "rgb24", "-f", "rawvideo"],
        np.uint8,
    )
    return data[: width * height * 3].reshape(height, width, 3).astype(np.int16)


def gray_frames(path: Path, width: int, height: int) -> np.ndarray:
    """Every frame of the first video stream as grey levels, shape (frames, height, width)."""
    data = _decode(["-i", str(path), "-map", "0:v:0", "-pix_fmt", "gray", "-f", "rawvideo"], np.uint8)
    return data.reshape(-1, height, width)


def frame_index(gray: np.ndarray) -> int:
    """Read back the frame number that `opsclips.counter_clip` drew into a frame."""
    row = gray[gray.shape[0] // 2]
    bits = [row[k * INDEX_COLUMN + INDEX_COLUMN // 2] > 128 for k in range(INDEX_BITS)]
    return sum(1 << k for k, bit in enumerate(bits) if bit)


def mono_pcm(path: Path, rate: int = AUDIO_RATE) -> np.ndarray:
    """The first audio stream as mono float samples at `rate`."""
    mono = ["-map", "0:a:0", "-ac", "1", "-ar", str(rate), "-c:a", "pcm_f32le", "-f", "f32le"]
    return _decode(["-i", str(path), *mono], np.float32)


def tone_onsets(samples: np.ndarray, rate: int = AUDIO_RATE, threshold: float = 0.1) -> list[float]:
    """Times (s) where sound starts above `threshold` after at least 50 ms below it."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if not loud.size:
        return []
    starts = [loud[0], *(b for a, b in itertools.pairwise(loud) if b - a > rate // 20)]
    return [float(s) / rate for s in starts]


def running_ffmpeg(marker: str | Path) -> list[int]:
    """Pids of live ffmpeg processes whose command line mentions `marker`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and argv and argv[0].endswith(b"ffmpeg") and str(marker).encode() in b" ".join(argv):
            pids.append(int(entry))
    return pids
