"""Remove time ranges from a video in one ffmpeg pass: trim/atrim each kept segment, then concat them.

trim + atrim rather than select + aselect: each kept segment is cut from both streams at the same instants, so
audio cannot silently keep a span the video lost. Cut points snap to the first frame at or after them, and the
audio is cut at those frame times, so picture and sound stay in step across every cut.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from mediajobs.errors import InvalidParams, UnsupportedMedia
from mediajobs.toolkit.ffmpeg import faststart_args, run_ffmpeg, source_input, thread_args, vfr_args
from mediajobs.toolkit.probe import Probe

Range = tuple[float, float]


class InvalidRanges(InvalidParams):
    """The ranges to remove are empty, outside the video or remove all of it."""


def _snap(t: float, fps: float, duration: float) -> float:
    # The first frame at or after t; the tolerance keeps a time that names a frame exactly on that frame.
    return min(math.ceil(t * fps - 1e-6) / fps, duration)


def merge_ranges(ranges: Sequence[Range], duration: float, *, fps: float | None = None) -> list[Range]:
    """Validate ranges (seconds, end exclusive), clamp them to the video and merge overlapping ones.

    With `fps`, both ends move to the first frame at or after them: a frame is removed when its timestamp
    falls inside a range.
    """
    if not ranges:
        raise InvalidRanges("ranges must list at least one range")
    checked = []
    for i, (start, end) in enumerate(ranges):
        name = f"ranges[{i}]"
        if not (math.isfinite(start) and math.isfinite(end)):
            raise InvalidRanges(f"{name} must have finite start and end")
        if start < 0:
            raise InvalidRanges(f"{name}.start must not be negative")
        if end <= start:
            raise InvalidRanges(f"{name}.end ({end:g}) must be after its start ({start:g})")
        if start >= duration:
            raise InvalidRanges(f"{name} starts at {start:g} s, at or after the {duration:g} s video ends")
        end = min(end, duration)
        if fps:
            start, end = _snap(start, fps, duration), _snap(end, fps, duration)
        if end > start:  # a range between two frames removes none of them
            checked.append((start, end))
    merged: list[Range] = []
    for start, end in sorted(checked):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    if not merged:
        raise InvalidRanges("ranges fall between frames and remove nothing")
    if not kept_segments(merged, duration):
        raise InvalidRanges("ranges remove the whole video")
    return merged


def kept_segments(removed: Sequence[Range], duration: float) -> list[Range]:
    """The complement of merged `removed` ranges within 0..duration."""
    kept, position = [], 0.0
    for start, end in removed:
        if start > position:
            kept.append((position, start))
        position = max(position, end)
    if position < duration:
        kept.append((position, duration))
    return kept


def output_duration(removed: Sequence[Range], duration: float) -> float:
    """How long the result of removing merged `removed` ranges is."""
    return sum(end - start for start, end in kept_segments(removed, duration))


def _trim(start: float, end: float, duration: float, shift: float = 0.0) -> str:
    bounds = []
    if start > 0:
        bounds.append(f"start={max(start - shift, 0):.6f}")
    if end < duration:
        bounds.append(f"end={end - shift:.6f}")
    return ":".join(bounds)


def build_cut_filter(kept: Sequence[Range], duration: float, probe: Probe) -> tuple[str, list[str]]:
    """A filter_complex keeping `kept` of both streams, and the `-map` labels of its outputs."""
    n = len(kept)
    chains, joined = [], [""] * n
    if probe.has_video:
        # Half a frame early: a frame's timestamp may sit a hair before its nominal time (rounded rates,
        # coarse time bases), and the midpoint between frames selects the same frames either way.
        shift = 0.5 / probe.fps if probe.fps else 0.0
        chains.append(f"[0:v:0]split={n}" + "".join(f"[vs{i}]" for i in range(n)))
        for i, (start, end) in enumerate(kept):
            trim = _trim(start, end, duration, shift)
            chains.append(f"[vs{i}]trim{'=' + trim if trim else ''},setpts=PTS-STARTPTS[vk{i}]")
            joined[i] += f"[vk{i}]"
    if probe.has_audio:
        chains.append(f"[0:a:0]asplit={n}" + "".join(f"[as{i}]" for i in range(n)))
        for i, (start, end) in enumerate(kept):
            trim = _trim(start, end, duration)
            chains.append(f"[as{i}]atrim{'=' + trim if trim else ''},asetpts=PTS-STARTPTS[ak{i}]")
            joined[i] += f"[ak{i}]"
    v, a = int(probe.has_video), int(probe.has_audio)
    outputs = ["[v]"] * v + ["[a]"] * a
    chains.append(f"{''.join(joined)}concat=n={n}:v={v}:a={a}{''.join(outputs)}")
    return ";".join(chains), outputs


def remove_frames(
    src: str | Path,
    dst: str | Path,
    probe: Probe,
    ranges: Sequence[Range],
    *,
    threads: int = 0,
    crf: int = 18,
    preset: str = "veryfast",
    on_progress: Callable[[float], None] | None = None,
) -> Path:
    """Write `src` without the frames (and sound) inside `ranges` to `dst`."""
    if not probe.has_video and not probe.has_audio:
        raise UnsupportedMedia("nothing to cut: no video or audio stream")
    dst = Path(dst)
    removed = merge_ranges(ranges, probe.duration, fps=probe.fps if probe.has_video else None)
    kept = kept_segments(removed, probe.duration)
    graph, outputs = build_cut_filter(kept, probe.duration, probe)
    before, after = thread_args(threads)
    video = ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]
    args = [
        *before,
        *source_input(src, probe),
        "-filter_complex", graph,
        *(arg for label in outputs for arg in ("-map", label)),
        *(video + vfr_args() if probe.has_video else []), *after,
        *(["-c:a", "aac", "-b:a", "192k"] if probe.has_audio else []),
        *faststart_args(dst),
        str(dst),
    ]  # fmt: skip
    run_ffmpeg(args, output_duration(removed, probe.duration), on_progress, source=probe)
    return dst
