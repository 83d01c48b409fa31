"""Clips: the frames of [start, end) of a source and the sound under them, as a file of their own.

Without a crop a clip is a smart render (`smart.render.smart_cut` removing [0, start) and [end, duration)):
the GOPs inside the range are copied and only the ends re-encoded. A crop changes every picture, so a
cropped clip is encoded in full, reading from a little before `start` rather than from the beginning.
Times snap to frames as frame removal's do: a frame belongs to the clip when its time is in [start, end).
A clip of everything copies the source's streams into a new MP4 (without the source's metadata).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from mediajobs.errors import InvalidParams, UnsupportedMedia
from mediajobs.toolkit import cut, sound
from mediajobs.toolkit.ffmpeg import (
    faststart_args,
    run_ffmpeg,
    sei_filter,
    source_input,
    thread_args,
    vfr_args,
)
from mediajobs.toolkit.inputs import input_args
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.smart.render import RenderReport, smart_cut

Aspect = Literal["9:16", "1:1", "4:5", "16:9"]
ASPECTS: tuple[str, ...] = get_args(Aspect)
# Sound alone has no frames to count; a clip shorter than this is a click, not a clip.
MIN_AUDIO_S = 0.1
# A cropped clip's decode starts this long before `start` (the demuxer seeks to a keyframe before it).
SEEK_MARGIN_S = 1.0


class InvalidClip(InvalidParams):
    """A clip range or crop that does not fit the source; `field` names the request field to fix."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Crop:
    """Cut the picture to `aspect` (width:height as shown) around the horizontal centre `x` (0 left to 1)."""

    aspect: str
    x: float = 0.5


def window(start: float, end: float, probe: Probe, *, crop: Crop | None = None) -> tuple[float, float]:
    """The clip's [start, end) snapped to the frames it keeps; InvalidClip naming the field to fix."""
    duration = probe.duration
    if not (math.isfinite(start) and math.isfinite(end)):
        raise InvalidClip("start and end must be finite numbers of seconds", field="start")
    if start < 0:
        raise InvalidClip("start must not be negative", field="start")
    if end <= start:
        raise InvalidClip(
            f"end ({end:g}) must be after start ({start:g}); the range is [start, end)", field="end"
        )
    if start >= duration:
        raise InvalidClip(
            f"start ({start:g} s) is at or after the end of the media ({duration:g} s)", field="start"
        )
    if end > duration + 1e-6:
        raise InvalidClip(f"end ({end:g} s) is after the end of the media ({duration:g} s)", field="end")
    if crop is not None:
        if not probe.has_video:
            raise InvalidClip(
                "the media has no picture to crop (it is sound only); leave crop out", field="crop"
            )
        if crop.aspect not in ASPECTS:
            raise InvalidClip(f"crop.aspect must be one of {', '.join(ASPECTS)}", field="crop.aspect")
        if not (math.isfinite(crop.x) and 0.0 <= crop.x <= 1.0):
            raise InvalidClip("crop.x must be between 0 (left) and 1 (right)", field="crop.x")
    end = min(end, duration)
    fps = probe.fps if probe.has_video else None
    if not fps:
        if end - start < MIN_AUDIO_S:
            raise InvalidClip(
                f"the clip is {end - start:g} s long; make it at least {MIN_AUDIO_S:g} s", field="end"
            )
        return start, end
    first, stop = _frame(start, fps), _frame(end, fps)
    if stop <= first:
        raise InvalidClip(
            f"[{start:g}, {end:g}) holds no frame: frames are {1 / fps:.4f} s apart at {fps:g} fps, the "
            f"first at or after {start:g} s is at {first / fps:.4f} s; make the clip at least one frame long",
            field="end",
        )
    return first / fps, min(stop / fps, duration)


def _frame(t: float, fps: float) -> int:
    # The first frame at or after t (a time naming a frame exactly stays on it), as frame removal snaps.
    return math.ceil(t * fps - 1e-6)


def crop_filter(crop: Crop) -> str:
    """A crop to `crop.aspect` as shown (pixel aspect counted), full height or width, even sizes."""
    w, h = (int(n) for n in crop.aspect.split(":"))
    a = f"({w}/{h})"
    width = f"trunc(min(iw\\,ih*{a}/sar)/2)*2"
    height = f"trunc(min(ih\\,iw*sar/{a})/2)*2"
    x = f"trunc(max(0\\,min(iw-ow\\,{crop.x:.6f}*iw-ow/2))/2)*2"
    return f"crop=w={width}:h={height}:x={x}:y=trunc((ih-oh)/4)*2"


def render_clip(
    src: str | Path,
    dst: str | Path,
    probe: Probe,
    start: float,
    end: float,
    *,
    crop: Crop | None = None,
    threads: int = 0,
    on_progress: Callable[[float], None] | None = None,
) -> RenderReport:
    """Write the frames of [start, end) of `src` and their sound to `dst`; the report says how."""
    src, dst = Path(src), Path(dst)
    if not probe.has_video and not probe.has_audio:
        raise UnsupportedMedia("nothing to clip: no video or audio stream")
    start, end = window(start, end, probe, crop=crop)
    if crop is not None:
        _encode(src, dst, probe, start, end, crop, threads=threads, on_progress=on_progress)
        return RenderReport("full", end - start, 0.0, f"cropping to {crop.aspect} changes every picture")
    ranges = [r for r in ((0.0, start), (end, probe.duration)) if r[1] > r[0]]
    if not ranges:
        # The whole source: its own streams without its metadata (the original keeps that).
        if probe.has_video and sei_filter(probe.video_codec) is None:
            _encode(src, dst, probe, start, end, None, threads=threads, on_progress=on_progress)
            reason = f"{probe.video_codec} video cannot be copied without the data it carries beside pictures"
            return RenderReport("full", end - start, 0.0, reason)
        _copy_whole(src, dst, probe, on_progress=on_progress)
        return RenderReport("smart", 0.0, probe.duration)
    if not probe.has_video:
        cut.remove_frames(src, dst, probe, ranges, threads=threads, on_progress=on_progress)
        return RenderReport("full", end - start, 0.0, "there is no video stream")
    return smart_cut(src, dst, probe, ranges, threads=threads, on_progress=on_progress)


def _encode(
    src: Path,
    dst: Path,
    probe: Probe,
    start: float,
    end: float,
    crop: Crop | None,
    *,
    threads: int,
    on_progress: Callable[[float], None] | None,
) -> None:
    """Encode [start, end) (cropped when asked); the decode starts at a keyframe shortly before `start`."""
    seek = max(0.0, start - SEEK_MARGIN_S)
    # Half a frame early, as frame removal trims: the midpoint between frames picks the same frames
    # whatever rounding a frame's timestamp carries.
    half = 0.5 / probe.fps if probe.fps else 0.0
    until = f":end={end - seek - half:.6f}" if end < probe.duration else ""
    chains = [
        f"[0:v:0]trim=start={start - seek - half:.6f}{until},setpts=PTS-STARTPTS,"
        f"{crop_filter(crop) if crop is not None else 'null'}[v]"
    ]
    maps = ["-map", "[v]"]
    if probe.has_audio:
        until = f":end={end - seek:.6f}" if end < probe.duration else ""
        chains.append(f"[0:a:0]atrim=start={start - seek:.6f}{until},asetpts=PTS-STARTPTS[a]")
        maps += ["-map", "[a]"]
    before, after = thread_args(threads)
    seeking = ["-ss", f"{seek:.6f}"] if seek > 0 else []
    args = [
        *before, *seeking, *input_args(src, duration_s=probe.duration - seek, max_pixels=probe.max_pixels),
        "-filter_complex", ";".join(chains), *maps,
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", *vfr_args(), *after,
        *(["-c:a", "aac", "-b:a", "192k"] if probe.has_audio else []),
        *faststart_args(dst), str(dst),
    ]  # fmt: skip
    run_ffmpeg(args, end - start, on_progress, source=probe)


def _copy_whole(src: Path, dst: Path, probe: Probe, *, on_progress: Callable[[float], None] | None) -> None:
    """The source's first video and audio streams copied as they are, but for their SEI."""
    args = [*source_input(src, probe)]
    if probe.has_video:
        args += ["-map", "0:V:0", "-c:v", "copy", "-bsf:v", str(sei_filter(probe.video_codec))]
    args += [*sound.kept_args(probe, dst), *faststart_args(dst), str(dst)]
    run_ffmpeg(args, probe.duration, on_progress, source=probe)
