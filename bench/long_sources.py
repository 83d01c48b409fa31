"""The long 1080p30 sources of the fast-start and derived benchmarks (issue 21), made in seconds.

One 10-minute 1080p30 H.264/AAC file with a keyframe every 2 s is encoded once (it is already in the bench
cache on the development machine); every other source is cut from it or concatenated from it with
`-c copy`: the 1-minute one is its first minute, the 60-minute one the file six times over (ffmpeg's concat
demuxer). The 10-minute HEVC one is one minute of HEVC encoded once (libx265 ultrafast, 2 s GOPs, `hvc1`),
its video repeated ten times, with the H.264 file's AAC sound (it is exactly as long: one sound track with no
joins, where ten copies of a minute of AAC, not a whole number of AAC frames, would overlap at each join).

Each file is checked with ffprobe (duration, codecs, size, rate, a keyframe every 2 s) before it is renamed
into the cache, so a bad or half-made source is never measured.

`MJ_BENCH_SECONDS` (default 600, a multiple of 20) is the length of the "10-minute" source; every other source
and every edit time scales with it, for a check that a benchmark runs to its end on small files.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench.media_common import cache_dir

FULL_S = 600
GOP_S = 2.0
FPS = 30
SIZE = "1920x1080"


def ten_minutes() -> int:
    """The length of the "10-minute" source: MJ_BENCH_SECONDS, else 600."""
    seconds = int(os.environ.get("MJ_BENCH_SECONDS", str(FULL_S)))
    if seconds <= 0 or seconds % 20:
        raise SystemExit(
            f"MJ_BENCH_SECONDS={seconds}: give a positive multiple of 20 (every source is 2 s GOPs)"
        )
    return seconds


def scale() -> float:
    """How much shorter than the issue's sources this run's are (1.0 for the real measurement)."""
    return ten_minutes() / FULL_S


def scaled(seconds: float) -> float:
    """A time of the full-size benchmark (an edit's start, a threshold) in this run's sources."""
    return seconds * scale()


def length(seconds: float) -> str:
    """60 → '1 min', 20 → '20 s'."""
    return f"{seconds / 60:g} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g} s"


def h264(minutes: int) -> Path:
    """1080p30 H.264/AAC of `minutes` (1, 3, 10 or 60, scaled by MJ_BENCH_SECONDS), 2 s GOPs."""
    base = ten_minutes()
    seconds = round(base * minutes / 10)
    if minutes == 10:
        return _made(seconds, "h264", lambda out: _encode_h264(seconds, out))
    source = _made(base, "h264", lambda out: _encode_h264(base, out))
    if minutes < 10:
        return _made(seconds, "h264", lambda out: _cut(source, seconds, out))
    if minutes % 10 == 0:
        return _made(seconds, "h264", lambda out: _concat(source, minutes // 10, out))
    raise ValueError(f"no {minutes}-minute source: 1, 3, 10 or a multiple of 10")


def hevc_ten_minutes() -> Path:
    """10 minutes (scaled) of 1080p30 HEVC (`hvc1`) with AAC, 2 s GOPs: one minute encoded, ten times over."""
    seconds = ten_minutes()
    piece_s = seconds // 10
    sound = h264(10)
    piece = _made(piece_s, "hevc-video", lambda out: _encode_hevc_video(piece_s, out), audio=False)
    return _made(seconds, "hevc", lambda out: _concat(piece, 10, out, sound=sound))


def _made(seconds: int, codec: str, make: Callable[[Path], None], *, audio: bool = True) -> Path:
    """The cached source, made by `make` into a partial file and checked first when it is not there."""
    out = cache_dir() / f"fast-start-{seconds}s-1080p30-{codec}.mp4"
    if out.exists():
        return out
    partial = out.with_name(f"partial-{out.name}")
    print(f"  making {out.name} (once; kept in {out.parent})", flush=True)
    try:
        make(partial)
        check(partial, seconds, "hevc" if codec.startswith("hevc") else "h264", audio=audio)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(out)
    return out


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _encode_h264(seconds: int, out: Path) -> None:
    """testsrc2 with a 440 Hz tone, x264 veryfast, a keyframe every 2 s, as a camera or editor exports it."""
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate={FPS}:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-g", str(round(GOP_S * FPS)), "-keyint_min", str(round(GOP_S * FPS)), "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4", str(out),
    )  # fmt: skip


def _encode_hevc_video(seconds: int, out: Path) -> None:
    gop = round(GOP_S * FPS)
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate={FPS}:duration={seconds}",
        "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-x265-params", f"log-level=error:keyint={gop}:min-keyint={gop}:scenecut=0", "-tag:v", "hvc1",
        "-movflags", "+faststart", "-f", "mp4", str(out),
    )  # fmt: skip


def _cut(source: Path, seconds: int, out: Path) -> None:
    """The first `seconds` of `source`, copied: it starts on a keyframe and ends before one. The frame count
    ends the video (a time would take in the next keyframe, decoded before the B-frames shown ahead of it)."""
    _ffmpeg("-i", str(source), "-map", "0", "-c", "copy", "-frames:v", str(seconds * FPS), "-t", str(seconds),
            "-movflags", "+faststart", "-f", "mp4", str(out))  # fmt: skip


def _concat(piece: Path, times: int, out: Path, *, sound: Path | None = None) -> None:
    """`piece` `times` over with the concat demuxer, copied; with `sound`'s audio track instead of its own."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{piece}'\n" for _ in range(times)))
    try:
        inputs = ["-f", "concat", "-safe", "0", "-i", str(listing)]
        maps = ["-map", "0"]
        if sound is not None:
            inputs += ["-i", str(sound)]
            maps = ["-map", "0:v:0", "-map", "1:a:0"]
        _ffmpeg(*inputs, *maps, "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(out))
    finally:
        listing.unlink(missing_ok=True)


def check(path: Path, seconds: float, codec: str, *, audio: bool = True) -> None:
    """Raise unless `path` is `seconds` of 1080p30 `codec` video (HEVC tagged hvc1) with AAC sound (unless
    `audio` is False) and a keyframe every 2 s from its start to its end."""
    shown = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries",
         "format=duration:stream=codec_type,codec_name,codec_tag_string,width,height,r_frame_rate",
         "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    data = json.loads(shown.stdout)
    streams = data.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video"]
    sound = [s for s in streams if s.get("codec_type") == "audio"]
    problems = []
    duration = float(data.get("format", {}).get("duration", 0))
    if abs(duration - seconds) > 0.1:
        problems.append(f"lasts {duration:.3f} s, not {seconds:g}")
    if len(video) != 1:
        problems.append(f"{len(video)} video streams")
    else:
        v = video[0]
        if v.get("codec_name") != codec:
            problems.append(f"video is {v.get('codec_name')}, not {codec}")
        if codec == "hevc" and v.get("codec_tag_string") != "hvc1":
            problems.append(f"HEVC tagged {v.get('codec_tag_string')}, not hvc1")
        if f"{v.get('width')}x{v.get('height')}" != SIZE or v.get("r_frame_rate") != f"{FPS}/1":
            problems.append(f"video {v.get('width')}x{v.get('height')} at {v.get('r_frame_rate')}")
    if audio and [s.get("codec_name") for s in sound] != ["aac"]:
        problems.append(f"sound {[s.get('codec_name') for s in sound]}, not one AAC track")
    if not audio and sound:
        problems.append("has sound")
    keys = keyframes(path)
    expected = round(seconds / GOP_S)
    odd = [f"{a:.3f}→{b:.3f}" for a, b in itertools.pairwise(keys) if abs(b - a - GOP_S) > 0.5 / FPS]
    if len(keys) != expected or odd or (keys and keys[0] > 0.5 / FPS + first_pts(path)):
        where = f"; gaps {', '.join(odd[:5])}" if odd else ""
        problems.append(
            f"{len(keys)} keyframes from {keys[0] if keys else '-'} s, not {expected} 2 s apart{where}"
        )
    if problems:
        raise RuntimeError(f"{path.name}: " + "; ".join(problems))


def first_pts(path: Path) -> float:
    """When the video starts (a copy of AAC with its priming may start it a frame of sound late)."""
    shown = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=start_time",
         "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(shown.stdout.strip() or 0)


def keyframes(path: Path) -> list[float]:
    """The video's keyframe times, from its packets' flags (no decoding)."""
    shown = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
         "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    keys = []
    for line in shown.stdout.splitlines():
        pts, _, flags = line.partition(",")
        if "K" in flags and pts not in ("", "N/A"):
            keys.append(float(pts))
    return sorted(keys)
