"""Pictures from an HLS rendition's segments: the frame shown at a time, and short animated previews.

"The frame shown at t" is the last frame whose presentation time is not after t (a player paused at t shows
it). Times are seconds from the rendition's first frame; a segment's own first frame is at its grid start, so
a caller passes `t` relative to the segment it fetched. The frame is found by its number among the segment's
frames in presentation order (from the packets, no decoding), then decoded up to it and no further.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mediajobs.errors import UnsupportedMedia
from mediajobs.toolkit import packets
from mediajobs.toolkit.ffmpeg import run_ffmpeg, thread_args, vfr_args
from mediajobs.toolkit.inputs import segments_input_args, write_segment_list
from mediajobs.toolkit.probe import Probe

Fit = Literal["preserve", "crop", "pad"]
Still = Literal["jpg", "png", "webp"]
Animation = Literal["gif", "webp"]
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}
# Half a millisecond: times are given to the millisecond and real frames are at least 1/240 s apart.
TOLERANCE_S = 0.0005
_STILL_CODEC = {
    "jpg": ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj444p"],
    "png": ["-c:v", "png", "-pix_fmt", "rgb24"],
    "webp": ["-c:v", "libwebp", "-quality", "85"],
}


@dataclass(frozen=True)
class Size:
    """What to make of a `width` x `height` picture: the scaling filters and the size they produce."""

    width: int
    height: int
    filters: str


def sized(source: tuple[int, int], width: int | None, height: int | None, fit: Fit = "preserve") -> Size:
    """Scale a `source` (w, h) picture to the request; without either side, the source's own size.

    preserve: fit inside width x height keeping the aspect ratio (one side given: the other follows);
    crop: fill exactly width x height, cutting the overflow around the centre; pad: fit inside, then
    black bars to exactly width x height. crop and pad with one side given behave as preserve.
    """
    sw, sh = source
    if width is None and height is None:
        width, height = sw, sh
    if fit != "preserve" and width is not None and height is not None:
        if fit == "crop":
            scale = max(width / sw, height / sh)
            w, h = max(width, round(sw * scale)), max(height, round(sh * scale))
            return Size(width, height, f"scale={w}:{h},setsar=1,crop={width}:{height}")
        scale = min(width / sw, height / sh)
        w, h = max(1, round(sw * scale)), max(1, round(sh * scale))
        pad = f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black"
        return Size(width, height, f"scale={w}:{h},setsar=1,{pad}")
    if width is not None and height is not None:
        scale = min(width / sw, height / sh)
    elif width is not None:
        scale = width / sw
    else:
        assert height is not None
        scale = height / sh
    w, h = max(1, round(sw * scale)), max(1, round(sh * scale))
    return Size(w, h, f"scale={w}:{h},setsar=1")


def frame_number(index: packets.VideoIndex, t: float) -> int:
    """Which frame (0-based, presentation order) is shown `t` seconds after the first one."""
    target = index.frames[0] + t + TOLERANCE_S
    return max(0, bisect.bisect_right(index.frames, target) - 1)


def frame_at(
    segment: Path, out: Path, t: float, size: Size, fmt: Still, probe: Probe, *, segment_s: float
) -> Path:
    """Write the frame shown `t` seconds after `segment`'s first frame, scaled, as `fmt` to `out`."""
    index = packets.scan(segment, duration_s=segment_s, max_pixels=probe.max_pixels)
    n = frame_number(index, t)
    args = ["-v", "error", "-protocol_whitelist", "file", "-format_whitelist", "mpegts"]
    args += ["-i", f"file:{segment.resolve()}", "-map", "0:V:0"]
    # Frames reach the filter in presentation order; only the chosen one is scaled and encoded.
    args += ["-vf", f"select=eq(n\\,{n}),{size.filters}", "-frames:v", "1", *vfr_args()]
    args += [*_STILL_CODEC[fmt], "-f", "image2", "-update", "1"]
    run_ffmpeg([*args, str(out)], segment_s, None, source=probe)
    if not out.is_file() or out.stat().st_size == 0:
        raise UnsupportedMedia(f"no frame at {t:.3f} s of the segment")
    return out


def animated(
    segments: Sequence[Path],
    out: Path,
    *,
    start: float,
    end: float,
    width: int,
    fps: float,
    fmt: Animation,
    source: tuple[int, int],
    probe: Probe,
    threads: int = 0,
) -> Path:
    """An animated picture of [start, end) seconds after the first segment's first frame, `fps` frames a
    second (each the frame shown at its time), `width` wide, looping."""
    frames = max(1, round((end - start) * fps))
    size = sized(source, width, None)
    thread_in, thread_out = thread_args(threads)
    steps = [
        f"fps=fps={fps:g}:start_time={start:.6f}:round=up",
        f"trim=end_frame={frames}",
        "setpts=PTS-STARTPTS",
        size.filters,
    ]
    chain = ",".join(steps)
    if fmt == "gif":
        # One palette for the whole clip: far better colours than the fixed web palette.
        chain += ",split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=3"
        codec = ["-c:v", "gif", "-loop", "0"]
    else:
        codec = ["-c:v", "libwebp_anim", "-loop", "0", "-quality", "75", "-pix_fmt", "yuv420p"]
    work = out.parent / f"{out.stem}.txt"
    args = ["-v", "error", *thread_in, *segments_input_args(write_segment_list(list(segments), work))]
    args += ["-map", "0:V:0", "-vf", chain, *vfr_args(), *thread_out]
    args += [*codec, "-f", fmt]
    try:
        run_ffmpeg([*args, str(out)], end - start, None, source=probe)
    finally:
        work.unlink(missing_ok=True)
    if not out.is_file() or out.stat().st_size == 0:
        raise UnsupportedMedia(f"no frames between {start:.3f} and {end:.3f} s")
    return out
