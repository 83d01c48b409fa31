"""Sources whose every frame carries its own index, and the check "the output shows exactly these frames".

Four flat grey boxes along the top-left edge, each one base-8 digit of the frame number (least significant
first) as a grey level 16 + 32 * digit, drawn with `geq` on `N` over moving testsrc2 detail (so a re-encode
is a real one). Read back by averaging the middle of each box: levels 32 apart survive re-encoding and
scaling (the boxes are an eighth of the picture's height, wherever a rendition scales it), up to 4096 frames.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mediajobs import process

DIGITS = 4
BASE = 8
LOW, STEP = 16, 32
MOST = BASE**DIGITS


def numbered_video(size: tuple[int, int], fps: int, seconds: float) -> str:
    """A lavfi graph whose output `[v]` shows each frame's index in four grey boxes."""
    w, h = size
    box = h // 8
    # An 8x2 picture, two columns per digit (yuv420p wants even sizes), scaled up without blending.
    digit = f"mod(floor(N/pow({BASE},floor(X/2))),{BASE})"
    boxes = (
        f"nullsrc=s={2 * DIGITS}x2:r={fps}:d={seconds:g},format=yuv444p,"
        f"geq=lum='{LOW}+{STEP}*{digit}':cb=128:cr=128,scale={DIGITS * box}:{box}:flags=neighbor"
    )
    return (
        f"testsrc2=s={w}x{h}:r={fps}:d={seconds:g}[bg];{boxes}[boxes];"
        "[bg][boxes]overlay=0:0:format=yuv420,format=yuv420p[v]"
    )


def numbered_clip(
    path: Path,
    *,
    video: Sequence[str],
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    seconds: float = 12.0,
    audio: bool = True,
) -> Path:
    """Encode a numbered source with the `video` codec options (and a quiet 300 Hz tone as AAC)."""
    assert seconds * fps <= MOST, "more frames than four base-8 digits can number"
    args = ["-filter_complex", numbered_video(size, fps, seconds)]
    if audio:
        tone = f"aevalsrc='0.05*sin(2*PI*300*t)':s=48000:d={seconds:g}"
        args += ["-f", "lavfi", "-i", tone, "-map", "0:a", "-c:a", "aac"]
    args += ["-map", "[v]", *video]
    process.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *args, "-t", f"{seconds:g}", str(path)]
    )
    return path


def shown_indices(path: Path) -> list[int]:
    """The index every decoded frame of `path` shows, in the order the decoder outputs them.

    Frames are taken as the decoder gives them (`-fps_mode passthrough`): no frame is duplicated or dropped
    to fit a frame rate, so a repeated or lost picture shows as one.
    """
    done = process.run(
        ["ffprobe", "-v", "error", "-select_streams", "V:0", "-show_entries", "stream=width,height",
         "-of", "json", str(path)],
        capture_stdout=True, network=False,
    )  # fmt: skip
    stream = json.loads(done.stdout)["streams"][0]
    w, h = int(stream["width"]), int(stream["height"])
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "frames.yuv"
        # The luma plane as it is: a conversion to "gray" would stretch it to full range.
        process.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:V:0",
             "-fps_mode", "passthrough", "-pix_fmt", "yuv420p", "-f", "rawvideo", str(raw)],
            network=False,
        )  # fmt: skip
        chroma = 2 * ((w + 1) // 2) * ((h + 1) // 2)
        frames = np.fromfile(raw, dtype=np.uint8).reshape(-1, w * h + chroma)[:, : w * h].reshape(-1, h, w)
    box = h // 8
    inner = slice(box // 4, box - box // 4)
    numbers = np.zeros(len(frames), dtype=np.int64)
    for k in range(DIGITS):
        left = k * box
        level = frames[:, inner, left + box // 4 : left + box - box // 4].mean(axis=(1, 2))
        digits = np.clip(np.rint((level - LOW) / STEP), 0, BASE - 1).astype(np.int64)
        numbers += digits * BASE**k
    return [int(n) for n in numbers]


def decode_complaints(path: Path) -> str:
    """What ffmpeg says decoding `path` to the end (empty for a clean stream).

    A stream spliced wrongly shows here as "non monotonically increasing dts": the decoder hands out
    frames whose times go backwards.
    """
    done = process.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        check=False, network=False,
    )  # fmt: skip
    return done.stderr_tail.strip()


def differences(got: Sequence[int], want: Sequence[int], limit: int = 8) -> list[str]:
    """Where `got` departs from `want`, in words ("output 366-368 shows [417, 417, 435], wanted [...]")."""
    found = []
    for tag, a, b, c, d in difflib.SequenceMatcher(a=want, b=got, autojunk=False).get_opcodes():
        if tag != "equal":
            found.append(f"output {c}-{d - 1} shows {list(got[c:d])[:12]}, wanted {list(want[a:b])[:12]}")
    return found[:limit]


def assert_shows_exactly(path: Path, want: Sequence[int]) -> None:
    """The output's frames are exactly the source frames `want`, in order, and decode cleanly."""
    got = shown_indices(path)
    assert got == list(want), f"{len(got)} frames where {len(want)} were wanted: " + "; ".join(
        differences(got, want)
    )
    complaints = decode_complaints(path)
    assert "non monotonically increasing dts" not in complaints, complaints
    assert complaints == "", complaints


def kept(frames: int, removed: Sequence[tuple[int, int]]) -> list[int]:
    """Source frames [0, frames) but for the [first, end) ranges in `removed`."""
    return [p for p in range(frames) if not any(a <= p < b for a, b in removed)]
