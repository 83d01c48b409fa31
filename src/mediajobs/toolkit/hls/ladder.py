"""The HLS ladder a source deserves: its renditions, their segment grid, and whether its stream is copied.

A source browsers play as it is (`standard_reason` is None: H.264 8-bit 4:2:0 up to 1080p, AAC or no audio,
keyframes at most 10 s apart, a sane index) keeps its own video stream as the top rendition, on a grid cut at
its own keyframes; every other source is encoded whole, on a fixed 4 s grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from mediajobs.errors import UnsupportedMedia
from mediajobs.toolkit.hls import grid as grids
from mediajobs.toolkit.hls.grid import Grid
from mediajobs.toolkit.packets import VideoIndex
from mediajobs.toolkit.probe import Probe

PRESET = "veryfast"
AUDIO = "audio"
AUDIO_BITRATE = 128_000
# (shorter side, video bitrate cap in bit/s), best first.
LADDER = ((1080, 5_000_000), (720, 2_800_000), (480, 1_400_000), (360, 800_000))
# Longest keyframe distance a stream copy may keep: its segments can be no shorter.
MAX_COPY_GOP_S = grids.MAX_GOP_S
STANDARD_PROFILES = ("Baseline", "Constrained Baseline", "Main", "High")
STANDARD_PIX_FMTS = ("yuv420p", "yuvj420p")
_AVC_PROFILE = {"Baseline": "4200", "Constrained Baseline": "42e0", "Main": "4d40", "High": "6400"}
_AAC = {"HE-AAC": "mp4a.40.5", "HE-AACv2": "mp4a.40.29"}


@dataclass(frozen=True)
class Rendition:
    """One rung of the ladder; bitrates in bit/s. `copy`: the source's own video stream, not re-encoded."""

    height: int
    width: int
    video_bitrate: int
    maxrate: int
    bufsize: int
    audio_bitrate: int
    copy: bool = False
    level: int = 40

    @property
    def name(self) -> str:
        """Directory and label: the shorter side, so portrait 1080x1920 is "1080p" like its landscape twin."""
        return f"{min(self.width, self.height)}p"


@dataclass(frozen=True)
class Ladder:
    """What to make from a source: renditions (best first), their grid, and how the audio is made."""

    renditions: tuple[Rendition, ...]
    grid: Grid
    audio: str | None  # "copy", "encode", or None without audio
    fast_start: str | None  # why the top rendition is not the source's own stream; None when it is
    codecs: dict[str, str]
    # Where every rendition has a keyframe: the source's own when its stream is copied (so that all
    # renditions have theirs at the same instants), else the grid's starts.
    keyframes: tuple[float, ...] = ()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.renditions]

    @property
    def encoded(self) -> tuple[Rendition, ...]:
        return tuple(r for r in self.renditions if not r.copy)

    @property
    def audio_apart(self) -> bool:
        """Whether the audio rendition is made on its own (`encode_audio`): the remux does not copy it."""
        return self.audio is not None and not (self.audio == "copy" and self.fast_start is None)


def plan_ladder(probe: Probe) -> list[Rendition]:
    """Standard rungs up to the source's size, or one rung at its own size when it is smaller than all."""
    if not probe.has_video or not probe.width or not probe.height:
        return []
    width, height = probe.width, probe.height
    short = min(width, height)
    rungs = [(rung, rate) for rung, rate in LADDER if rung <= short]
    if not rungs:
        return [_rendition(_even(width), _even(height), LADDER[-1][1], probe.fps)]
    renditions = []
    for rung, rate in rungs:
        # Scale the shorter side to the rung and keep the aspect ratio; x264 wants even dimensions.
        scale = rung / short
        renditions.append(_rendition(_even(width * scale), _even(height * scale), rate, probe.fps))
    return renditions


def _rendition(width: int, height: int, rate: int, fps: float | None) -> Rendition:
    # A one-second VBV buffer keeps any 4-6 s segment close to the cap.
    return Rendition(height, width, rate, rate, rate, AUDIO_BITRATE, level=_level(width, height, fps))


def _level(width: int, height: int, fps: float | None) -> int:
    """The H.264 level a rung needs (x264 is told, so CODECS can be written before any segment exists)."""
    fast = (fps or 30.0) > 30.5
    short = min(width, height)
    if short > 720:
        return 42 if fast else 40
    if short > 480:
        return 32 if fast else 31
    return 31


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def standard_reason(probe: Probe, index: VideoIndex | None) -> str | None:
    """Why browsers could not play the source's video stream as it is; None when they can."""
    if not probe.has_video or index is None:
        return "no video stream"
    checks = [
        (probe.video_codec == "h264", f"the video is {probe.video_codec}, not H.264"),
        (probe.video_profile in STANDARD_PROFILES, f"H.264 profile {probe.video_profile}"),
        (probe.pix_fmt in STANDARD_PIX_FMTS, f"pixel format {probe.pix_fmt}, not 8-bit 4:2:0"),
        (
            max(probe.width or 0, probe.height or 0) <= 1920
            and min(probe.width or 0, probe.height or 0) <= 1080,
            f"{probe.width}x{probe.height} is larger than 1080p",
        ),
        (probe.rotation == 0, "the picture is rotated by its metadata"),
        (probe.field_order in (None, "progressive", "unknown"), "the video is interlaced"),
        (probe.audio_codec in (None, "aac"), f"the audio is {probe.audio_codec}, not AAC"),
        (not index.problems, "; ".join(index.problems)),
        (
            index.longest_gop_s <= MAX_COPY_GOP_S,
            f"keyframes up to {index.longest_gop_s:.1f} s apart (at most {MAX_COPY_GOP_S:g})",
        ),
    ]
    return next((reason for ok, reason in checks if not ok), None)


def plan_encoded(
    probe: Probe,
    index: VideoIndex | None,
    reason: str,
    *,
    complete: bool = True,
    first_s: float | None = None,
) -> Ladder:
    """The ladder for a source whose stream cannot be copied after all (`reason`): everything encoded."""
    return plan(probe, index, refuse_copy=reason, complete=complete, first_s=first_s)


def plan(
    probe: Probe,
    index: VideoIndex | None,
    *,
    refuse_copy: str | None = None,
    complete: bool = True,
    first_s: float | None = None,
) -> Ladder:
    """The ladder and grid for a source: its own stream on top when it is standard, else all encoded.

    `complete=False`: `index` is a prefix of the stream (`packets.scan(until_s=...)`), the grid holds the
    first segments only (`grid.on_keyframes`), and a problem later in the stream may still refuse the copy.
    `first_s`: an encoded ladder's first segment is this long (`grid.fixed`).
    """
    reason = refuse_copy or standard_reason(probe, index)
    renditions = plan_ladder(probe)
    if index is not None and reason is None:
        assert probe.width and probe.height
        top = Rendition(
            probe.height, probe.width, 0, 0, 0, AUDIO_BITRATE, copy=True, level=probe.video_level or 40
        )
        renditions = [top, *(r for r in renditions if min(r.width, r.height) < min(top.width, top.height))]
        grid = grids.on_keyframes(index, complete=complete)
    elif index is not None:
        grid = grids.fixed(index, complete=complete, first_s=first_s)
    else:
        grid = _audio_grid(probe.duration)
    if not renditions and not probe.has_audio:
        raise UnsupportedMedia("no video or audio stream to transcode")
    audio = None if not probe.has_audio else "copy" if probe.audio_codec == "aac" else "encode"
    keys = tuple(index.keyframes) if index is not None and reason is None else grid.starts
    ladder = Ladder(tuple(renditions), grid, audio, reason, {}, keys)
    return replace(
        ladder, codecs={r.name: _codecs(r, probe, ladder) for r in renditions} | _audio_codecs(ladder, probe)
    )


def _audio_grid(duration: float) -> Grid:
    count = max(1, int(duration // grids.TARGET_S))
    if count > 1 and duration - (count - 1) * grids.TARGET_S < grids.TARGET_S / 4:
        count -= 1
    return Grid(tuple(i * grids.TARGET_S for i in range(count)), duration)


def _codecs(r: Rendition, probe: Probe, ladder: Ladder) -> str:
    """RFC 6381 codec names of a video variant and the audio it plays with."""
    profile = _AVC_PROFILE.get(probe.video_profile or "", "6400") if r.copy else "6400"
    video = f"avc1.{profile}{r.level:02x}"
    return f"{video},{_aac(probe)}" if ladder.audio else video


def _audio_codecs(ladder: Ladder, probe: Probe) -> dict[str, str]:
    return {AUDIO: _aac(probe)} if ladder.audio else {}


def _aac(probe: Probe) -> str:
    return _AAC.get(probe.audio_profile or "", "mp4a.40.2") if probe.audio_codec == "aac" else "mp4a.40.2"


def to_json(ladder: Ladder) -> dict[str, Any]:
    """The ladder as JSON, for the jobs that encode its chunks elsewhere."""
    return {
        "renditions": [asdict(r) for r in ladder.renditions],
        "grid": ladder.grid.public(),
        "audio": ladder.audio,
        "fast_start": ladder.fast_start,
        "codecs": ladder.codecs,
        "keyframes": list(ladder.keyframes),
    }


def from_json(data: dict[str, Any]) -> Ladder:
    return Ladder(
        renditions=tuple(Rendition(**r) for r in data["renditions"]),
        grid=Grid.from_public(data["grid"]),
        audio=data["audio"],
        fast_start=data["fast_start"],
        codecs=dict(data["codecs"]),
        keyframes=tuple(float(t) for t in data["keyframes"]),
    )


def cost(ladder: Ladder, seconds: float) -> float:
    """Relative encoding work for `seconds` of the source: pictures made (1080p30 = 1 per second)."""
    pixels = sum(r.width * r.height for r in ladder.encoded) / (1920 * 1080)
    # Decoding and scaling cost about a fifth of a 1080p encode whatever the rungs.
    return seconds * (pixels + (0.2 if ladder.encoded else 0.0))


AUDIO_COST_PER_S = 0.01  # AAC at 128 kbit/s: about a hundredth of a 1080p x264 encode
