"""Mask rectangular regions of a video (blur, black box, pixelate) in one ffmpeg pass.

Each blur/pixelate region is cropped from the decoded frame, filtered at its own size and overlaid back, so
the cost grows with the masked area rather than with the frame; black boxes are painted last so they always
win where regions overlap. Video is re-encoded with libx264; the sound is copied, or edited as `sound` says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from mediajobs.errors import InvalidParams, UnsupportedMedia
from mediajobs.toolkit.ffmpeg import faststart_args, run_ffmpeg, source_input, thread_args, vfr_args
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.sound import KEEP, Sound, output_args

Style = Literal["blur", "black", "pixelate"]
STYLES: tuple[str, ...] = get_args(Style)


class InvalidRegion(InvalidParams):
    """A mask region is empty, outside the frame or outside the video's duration."""


@dataclass(frozen=True)
class Region:
    """A rectangle in source pixels, masked from `start` to `end` seconds (`None`: to the end)."""

    x: int
    y: int
    w: int
    h: int
    start: float = 0.0
    end: float | None = None
    style: str = "blur"


def clip_regions(regions: Sequence[Region], width: int, height: int, duration: float) -> list[Region]:
    """Clip regions to the frame; reject those that cannot mask anything."""
    if not regions:
        raise InvalidRegion("regions must list at least one region")
    clipped = []
    for i, r in enumerate(regions):
        name = f"regions[{i}]"
        if r.style not in STYLES:
            raise InvalidRegion(f"{name}.style must be one of {', '.join(STYLES)}, not {r.style!r}")
        if r.w <= 0 or r.h <= 0:
            raise InvalidRegion(f"{name} has a non-positive size {r.w}x{r.h}")
        if r.start < 0:
            raise InvalidRegion(f"{name}.start must not be negative")
        if r.end is not None and r.end <= r.start:
            raise InvalidRegion(f"{name}.end ({r.end:g}) must be after its start ({r.start:g})")
        if r.start >= duration:
            raise InvalidRegion(f"{name} starts at {r.start:g} s, after the {duration:g} s video ends")
        x0, y0 = max(r.x, 0), max(r.y, 0)
        x1, y1 = min(r.x + r.w, width), min(r.y + r.h, height)
        if x1 <= x0 or y1 <= y0:
            raise InvalidRegion(f"{name} lies entirely outside the {width}x{height} frame")
        clipped.append(replace(r, x=x0, y=y0, w=x1 - x0, h=y1 - y0))
    return clipped


def _when(r: Region) -> str:
    if r.end is None:
        return f"gte(t,{r.start:.6f})"
    return f"between(t,{r.start:.6f},{r.end:.6f})"


def _even_box(r: Region, width: int, height: int) -> tuple[int, int, int, int]:
    # crop and overlay round x/y down to the 4:2:0 chroma grid; widening the box to even edges keeps the
    # region's right and bottom edge covered instead of leaving a one-pixel unmasked seam.
    x0, y0 = r.x - r.x % 2, r.y - r.y % 2
    x1, y1 = min(r.x + r.w + (r.x + r.w) % 2, width), min(r.y + r.h + (r.y + r.h) % 2, height)
    return x0, y0, x1 - x0, y1 - y0


def _obscure(r: Region, w: int, h: int) -> str:
    side = min(w, h)
    if r.style == "pixelate":
        block = min(side, max(8, side // 6))
        return f"pixelize=w={block}:h={block}"
    # Three box passes approximate a gaussian with sigma close to the radius; a quarter of the smaller side
    # dissolves text of any size that fits the box. Chroma planes are half size, hence the halved limits.
    luma = max(1, side // 4)
    chroma = min(luma // 2, side // 4)
    return f"boxblur=lr={luma}:lp=3:cr={chroma}:cp=3"


def build_mask_filter(regions: Sequence[Region], width: int, height: int) -> str:
    """One filter_complex reading `[0:v:0]` and writing `[vout]`; regions must already be clipped."""
    cropped = [r for r in regions if r.style != "black"]
    black = [r for r in regions if r.style == "black"]
    chains = []
    head = "[0:v:0]format=yuv420p"
    if cropped:
        labels = "".join(f"[c{i}]" for i in range(len(cropped)))
        chains.append(f"{head},split={len(cropped) + 1}[m0]{labels}")
        head = ""
    for i, r in enumerate(cropped):
        x, y, w, h = _even_box(r, width, height)
        when = _when(r)
        # The filter is disabled outside the time range too, so frames there cost one pointer-only crop.
        chains.append(f"[c{i}]crop={w}:{h}:{x}:{y},{_obscure(r, w, h)}:enable='{when}'[o{i}]")
        chains.append(f"[m{i}][o{i}]overlay={x}:{y}:enable='{when}'[m{i + 1}]")
    boxes = [f"drawbox=x={r.x}:y={r.y}:w={r.w}:h={r.h}:color=black:t=fill:enable='{_when(r)}'" for r in black]
    tail = ",".join(boxes) or "null"
    chains.append(f"{head},{tail}[vout]" if head else f"[m{len(cropped)}]{tail}[vout]")
    return ";".join(chains)


def checked(regions: Sequence[Region], sound: Sound, probe: Probe) -> tuple[list[Region], Sound]:
    """The regions clipped to the frame and the sound checked against `probe`; InvalidRegion, InvalidSound or
    UnsupportedMedia for a mask that does not fit it or changes nothing."""
    if not regions and not sound.changes:
        raise InvalidRegion(
            "regions must list at least one region, unless the mask changes the sound (audio, audio_ranges)"
        )
    sound = sound.checked(probe)
    if not regions:
        return [], sound
    if not probe.has_video or probe.width is None or probe.height is None:
        raise UnsupportedMedia("masking regions needs a video stream")
    return clip_regions(regions, probe.width, probe.height, probe.duration), sound


def apply_mask(
    src: str | Path,
    dst: str | Path,
    probe: Probe,
    regions: Sequence[Region],
    *,
    threads: int = 0,
    crf: int = 18,
    preset: str = "veryfast",
    sound: Sound = KEEP,
    on_progress: Callable[[float], None] | None = None,
) -> Path:
    """Write `src` with `regions` masked and its `sound` edited to `dst` (same size and frame rate)."""
    dst = Path(dst)
    clipped, sound = checked(regions, sound, probe)
    if not probe.has_video or probe.width is None or probe.height is None:
        # Sound alone: its pictures, if it had any, would have been masked above.
        args = [*source_input(src, probe), *output_args(sound, probe, dst)]
        run_ffmpeg([*args, *faststart_args(dst), str(dst)], probe.duration, on_progress, source=probe)
        return dst
    graph = build_mask_filter(clipped, probe.width, probe.height)
    before, after = thread_args(threads)
    args = [
        *before,
        *source_input(src, probe),
        "-filter_complex", graph,
        "-map", "[vout]",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), *after, *vfr_args(),
        *output_args(sound, probe, dst),
        *faststart_args(dst),
        str(dst),
    ]  # fmt: skip
    run_ffmpeg(args, probe.duration, on_progress, source=probe)
    return dst
