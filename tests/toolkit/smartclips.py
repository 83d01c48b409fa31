"""Clips for the smart render tests: every frame carries its index, the sound beeps on chosen frames.

The picture is testsrc2 (moving detail, so a re-encode is a real one) under a band of ten 32-pixel boxes
that spell the frame's index in binary; the sound is a quiet 300 Hz tone (a gap in it shows) with loud
1 kHz beeps starting exactly on the frames in `BEEPS`.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mediajobs import process
from tests.toolkit.frames import ffmpeg, gray_frames

FPS = 25
W, H = 320, 240
SECONDS = 12
BAND = 32  # the index band's height; index bit k is the box at x = 32k
BEEPS = (10, 113, 198, 250)  # 113 and 198 are the first frames after the two cuts
RANGES = [(3.1, 4.5), (7.3, 7.9)]  # ends between frames: they snap to 78..113 and 183..198
REMOVED = [(78, 113), (183, 198)]
AUDIO_FRAME_S = 1024 / 48_000


def kept(frames: int = SECONDS * FPS, removed: list[tuple[int, int]] = REMOVED) -> list[int]:
    return [p for p in range(frames) if not any(a <= p < b for a, b in removed)]


def marked_clip(path: Path, *, codec: str = "h264", open_gop: bool = False, seconds: int = SECONDS) -> None:
    """2 s GOPs with B-pyramids (three B-frames); open GOPs give each keyframe leading B-frames."""
    bits = ",".join(
        f"drawbox=x={32 * k}:y=0:w=32:h={BAND}:color=white:t=fill:enable='mod(floor(n/{1 << k}),2)'"
        for k in range(10)
    )
    video = f"testsrc2=s={W}x{H}:r={FPS}:d={seconds},drawbox=x=0:y=0:w={W}:h={BAND}:color=black:t=fill,{bits}"
    gates = "+".join(f"between(t,{n / FPS:g},{n / FPS + 0.1:g})" for n in BEEPS)
    sound = f"aevalsrc='0.05*sin(2*PI*300*t)+0.5*sin(2*PI*1000*t)*({gates})':s=48000:d={seconds}"
    gop = f"keyint={2 * FPS}:min-keyint={2 * FPS}:scenecut=0:bframes=3:b-pyramid=normal"
    if codec == "h264":
        encoder = ["-c:v", "libx264", "-preset", "veryfast", "-x264-params", gop + (":open-gop=1" * open_gop)]
    else:
        params = f"{gop.replace('normal', '1')}:open-gop={int(open_gop)}:log-level=error"
        encoder = ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", params]
    ffmpeg(
        "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", sound,
        *encoder, "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", str(seconds), path,
    )  # fmt: skip


def probe_json(path: Path, *args: str) -> dict[str, Any]:
    done = process.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_stdout=True, network=False
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def video_stream(path: Path) -> dict[str, Any]:
    stream: dict[str, Any] = probe_json(path, "-select_streams", "v:0", "-show_streams")["streams"][0]
    return stream


def packets(path: Path, stream: str = "v:0") -> list[dict[str, Any]]:
    entries = "packet=pts,dts,flags,pos,size,duration"
    found: list[dict[str, Any]] = probe_json(path, "-select_streams", stream, "-show_entries", entries)[
        "packets"
    ]
    return found


def keyframe_positions(path: Path) -> list[int]:
    """Display positions (frame numbers) of the keyframes."""
    pts = [int(p["pts"]) for p in packets(path)]
    shown = {t: n for n, t in enumerate(sorted(pts))}
    return sorted(shown[int(p["pts"])] for p in packets(path) if "K" in p["flags"])


def gray(path: Path) -> np.ndarray:
    return gray_frames(path, W, H)


def indices(frames: np.ndarray) -> list[int]:
    """The index each frame shows in its band."""
    row = frames[:, BAND // 2, 16::32][:, :10] > 128
    return [int(sum(1 << k for k in range(10) if bits[k])) for bits in row]


def framemd5(path: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "frames.md5"
        ffmpeg("-i", path, "-map", "0:v:0", "-f", "framemd5", out)
        lines = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    return [line.rsplit(",", 1)[1].strip() for line in lines]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def decode_errors(path: Path) -> str:
    done = process.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        check=False,
        network=False,
    )
    return done.stderr_tail


def assert_timestamps_clean(path: Path) -> None:
    """Decode times strictly rising, never after presentation; frames exactly one duration apart."""
    video = packets(path)
    dts = [int(p["dts"]) for p in video]
    pts = [int(p["pts"]) for p in video]
    assert all(a < b for a, b in itertools.pairwise(dts))
    assert all(d <= p for d, p in zip(dts, pts, strict=True))
    assert len({b - a for a, b in itertools.pairwise(sorted(pts))}) == 1


def parameter_sets_at_every_keyframe(path: Path, codec: str) -> bool:
    """Whether each keyframe's sample carries the SPS and PPS (and VPS) in band, read from the mp4 bytes."""
    wanted = {7, 8} if codec == "h264" else {32, 33, 34}
    data = path.read_bytes()
    for p in packets(path):
        if "K" not in p["flags"]:
            continue
        sample, types = data[int(p["pos"]) : int(p["pos"]) + int(p["size"])], set()
        while len(sample) > 4:
            size = int.from_bytes(sample[:4], "big")
            header = sample[4]
            types.add(header & 0x1F if codec == "h264" else (header >> 1) & 0x3F)
            sample = sample[4 + size :]
        if not wanted <= types:
            return False
    return True
