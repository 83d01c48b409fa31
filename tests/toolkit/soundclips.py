"""A clip for the mask's sound tests, and judging a mask's sound against its source's (see test_sound.py for
the tolerances and why)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mediajobs.toolkit.sound import BLEEP_HZ, BLEEP_LEVEL, Range
from tests.toolkit.frames import ffmpeg
from tests.toolkit.smartclips import BAND, FPS, H, W

RATE = 48_000
SECONDS = 6
AAC_FRAME = 1024
# Samples on either side of an edit's edge where the AAC code may smear it: a frame, and its window's overlap.
EDGE = 2 * AAC_FRAME


def sound_clip(path: Path, *, video: bool = True) -> None:
    """6 s of the index band over testsrc2 (2 s GOPs), and a steady two-tone stereo sound: 300 Hz left,
    500 Hz right, never silent."""
    bits = ",".join(
        f"drawbox=x={32 * k}:y=0:w=32:h={BAND}:color=white:t=fill:enable='mod(floor(n/{1 << k}),2)'"
        for k in range(10)
    )
    picture = (
        f"testsrc2=s={W}x{H}:r={FPS}:d={SECONDS},drawbox=x=0:y=0:w={W}:h={BAND}:color=black:t=fill,{bits}"
    )
    sound = f"aevalsrc='0.3*sin(2*PI*300*t)|0.2*sin(2*PI*500*t)':s={RATE}:d={SECONDS}"
    inputs = ["-f", "lavfi", "-i", picture] if video else []
    codecs = (
        ["-c:v", "libx264", "-preset", "veryfast", "-g", str(2 * FPS), "-pix_fmt", "yuv420p"] if video else []
    )
    ffmpeg(
        *inputs, "-f", "lavfi", "-i", sound, *codecs, "-c:a", "aac", "-b:a", "128k", "-t", str(SECONDS), path
    )


def pcm(path: Path, *args: str) -> np.ndarray:
    """The first audio stream (after `args`, e.g. a filter) as float samples, shape (samples, channels)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "pcm.raw"
        ffmpeg("-i", path, *(args or ("-map", "0:a:0")), "-c:a", "pcm_f32le", "-f", "f32le", raw)
        return np.fromfile(raw, dtype=np.float32).reshape(-1, 2)


def first_sample(t: float) -> int:
    """The first sample at or after `t` seconds."""
    return math.ceil(t * RATE - 1e-6)


def bleep(n: int) -> np.ndarray:
    return (BLEEP_LEVEL * np.sin(2 * np.pi * BLEEP_HZ * np.arange(n) / RATE)).astype(np.float32)


def window_db(signal: np.ndarray, error: np.ndarray) -> float:
    return float(10 * np.log10((error**2).sum() / max((signal**2).sum(), 1e-20)))


def assert_sound_edited(out: Path, source: Path, ranges: tuple[Range, ...]) -> None:
    """The AAC of `out` against the source's decode, window by window (see the module's docstring)."""
    reference, edited = pcm(source), pcm(out)
    assert abs(len(edited) - len(reference)) <= AAC_FRAME
    n = min(len(edited), len(reference))
    near = np.zeros(n, dtype=bool)
    near[:AAC_FRAME] = near[-AAC_FRAME:] = True  # the track's own ends are edges to the code too
    for r in ranges:
        a, b = first_sample(r.start), min(first_sample(r.end), n)
        near[max(0, a - EDGE) : b + EDGE] = True
        inside = edited[min(a + EDGE, b) : max(b - EDGE, a)]
        if r.style == "mute":
            assert not inside.any(), r
            assert np.abs(edited[a:b]).max() <= 0.01 * np.abs(reference).max(), r  # edges: -40 dB or less
        else:
            level = 20 * np.log10(np.sqrt((inside**2).mean()) * np.sqrt(2))  # a sine's peak from its RMS
            assert level == pytest.approx(20 * np.log10(BLEEP_LEVEL), abs=0.5), r
            spectrum = np.abs(np.fft.rfft(inside[:, 0]))
            assert np.fft.rfftfreq(len(inside), 1 / RATE)[spectrum.argmax()] == pytest.approx(BLEEP_HZ, abs=5)
    for start in range(0, n - AAC_FRAME, AAC_FRAME):
        if not near[start : start + AAC_FRAME].any():
            window = slice(start, start + AAC_FRAME)
            assert window_db(reference[window], edited[window] - reference[window]) < -40, start


def packets_without_sei(path: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "packets.md5"
        ffmpeg(
            "-i",
            path,
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-bsf:v",
            "filter_units=remove_types=6",
            "-f",
            "framemd5",
            out,
        )
        return [line.rsplit(",", 1)[1] for line in out.read_text().splitlines() if not line.startswith("#")]
