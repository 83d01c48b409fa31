"""What a mask does to the sound: keep it, silence it, remove it, or silence or bleep ranges of it.

A range is exact to the sample: a sample is silenced (or replaced by the bleep) when its time is in
[start, end), on the timeline the picture's filters see (ffmpeg's, starting where the file starts). The track
is cut at those samples (`atrim`), each range's piece is silenced (`volume=0`: digital silence) or replaced
by a 1 kHz tone, and the pieces are joined again (`concat`); the kept pieces pass untouched to the encoder.
Kept sound is copied as it is; edited sound is encoded once, whole, to AAC.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from mediajobs.errors import InvalidParams
from mediajobs.toolkit.ffmpeg import MP4_SUFFIXES, faststart_args, run_ffmpeg, sei_filter, source_input
from mediajobs.toolkit.probe import Probe

Mode = Literal["keep", "mute", "remove"]
Style = Literal["mute", "bleep"]
MODES: tuple[str, ...] = get_args(Mode)
STYLES: tuple[str, ...] = get_args(Style)
BLEEP_HZ = 1000
# Peak amplitude of the bleep: -20 dBFS (-23 dBFS RMS), the level of a test tone; clearly heard over speech
# without drowning the sound around it.
BLEEP_LEVEL = 0.1
# Edited sound is encoded once, whole; the fast coder at 192 kbit/s is transparent and several times
# quicker than the default two-loop search (see smart.render.AUDIO_CODEC).
AAC = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "192k"]
# Audio codecs the mp4 muxer takes as they are; anything else (pcm, flac, vorbis) is re-encoded to AAC.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "alac"})
# A range may end this far past the probed duration (its last sample's time, rounded by the client).
END_TOLERANCE_S = 0.001


class InvalidSound(InvalidParams):
    """The sound options do not fit the source; `field` names the request field to fix."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Range:
    """Seconds [start, end) of the sound to silence ("mute") or replace by a tone ("bleep")."""

    start: float
    end: float
    style: str = "mute"


@dataclass(frozen=True)
class Sound:
    """The whole track's fate (`mode`) and ranges edited in the kept track."""

    mode: str = "keep"
    ranges: tuple[Range, ...] = ()

    @property
    def changes(self) -> bool:
        return self.mode != "keep" or bool(self.ranges)

    def checked(self, probe: Probe) -> Sound:
        """This sound with its ranges in order; InvalidSound naming the field that does not fit `probe`."""
        if self.mode not in MODES:
            raise InvalidSound(f"audio must be one of {', '.join(MODES)}, not {self.mode!r}", field="audio")
        if self.ranges and self.mode != "keep":
            raise InvalidSound(
                f'audio_ranges edit the kept sound; with audio "{self.mode}" leave them out (or set audio '
                'to "keep")',
                field="audio_ranges",
            )
        if self.mode == "remove" and not probe.has_video:
            raise InvalidSound("the media is sound alone: removing it would leave nothing", field="audio")
        if self.changes and not probe.has_audio:
            what = "audio_ranges" if self.ranges else "audio"
            raise InvalidSound(f"the media has no sound to {_verb(self)}; leave {what} out", field=what)
        for i, r in enumerate(self.ranges):
            _check_range(i, r, probe.duration)
        ordered = sorted(enumerate(self.ranges), key=lambda item: item[1].start)
        for (_, before), (i, after) in itertools.pairwise(ordered):
            if after.start < before.end:
                raise InvalidSound(
                    f"audio_ranges[{i}] ({after.start:g}-{after.end:g} s) overlaps another range "
                    f"({before.start:g}-{before.end:g} s); join them or make them meet",
                    field=f"audio_ranges.{i}",
                )
        return replace(self, ranges=tuple(r for _, r in ordered))


KEEP = Sound()


def _verb(sound: Sound) -> str:
    return {"mute": "mute", "remove": "remove"}.get(sound.mode, "edit")


def _check_range(i: int, r: Range, duration: float) -> None:
    name = f"audio_ranges[{i}]"
    field = f"audio_ranges.{i}"
    if r.style not in STYLES:
        raise InvalidSound(f"{name}.style must be one of {', '.join(STYLES)}", field=f"{field}.style")
    if not (math.isfinite(r.start) and math.isfinite(r.end)):
        raise InvalidSound(f"{name} must have a finite start and end", field=f"{field}.start")
    if r.start < 0:
        raise InvalidSound(f"{name}.start must not be negative", field=f"{field}.start")
    if r.end <= r.start:
        message = f"{name}.end ({r.end:g}) must be after its start ({r.start:g})"
        raise InvalidSound(message, field=f"{field}.end")
    if r.start >= duration:
        raise InvalidSound(
            f"{name} starts at {r.start:g} s, at or after the end of the media ({duration:g} s)",
            field=f"{field}.start",
        )
    if r.end > duration + END_TOLERANCE_S:
        raise InvalidSound(
            f"{name} ends at {r.end:g} s, after the end of the media ({duration:g} s)", field=f"{field}.end"
        )


def kept_args(probe: Probe, dst: Path) -> list[str]:
    """Copy the first audio stream, unless the mp4 muxer cannot hold its codec."""
    if not probe.has_audio:
        return []
    if dst.suffix.lower() in MP4_SUFFIXES and probe.audio_codec not in MP4_AUDIO_CODECS:
        return ["-map", "0:a:0", "-c:a", "aac", "-b:a", "192k"]
    return ["-map", "0:a:0", "-c:a", "copy"]


def output_args(sound: Sound, probe: Probe, dst: Path) -> list[str]:
    """The options writing `sound` of input 0's first audio stream into `dst` (none: no sound)."""
    if not probe.has_audio or sound.mode == "remove":
        return []
    if not sound.changes:
        return kept_args(probe, dst)
    return ["-filter_complex", edit_filter(sound, probe.audio_sample_rate), "-map", "[a]", *AAC]


def edit_filter(sound: Sound, sample_rate: int | None) -> str:
    """A filter graph from `[0:a:0]` to `[a]`: silenced whole, or its (ordered) ranges silenced or bleeped."""
    if sound.mode == "mute":
        return "[0:a:0]volume=0[a]"
    # Cut at the first sample at or after each bound: its time, exactly, in seconds.
    snap = (lambda t: math.ceil(t * sample_rate - 1e-6) / sample_rate) if sample_rate else (lambda t: t)
    pieces: list[tuple[float | None, float | None, str | None]] = []
    position: float | None = None
    for r in sound.ranges:
        start, end = snap(r.start), snap(r.end)
        if start > (position or 0.0):
            pieces.append((position, start, None))
        pieces.append((start, end, r.style))
        position = end
    pieces.append((position, None, None))
    chains = [f"[0:a:0]asplit={len(pieces)}" + "".join(f"[s{i}]" for i in range(len(pieces)))]
    for i, (start, end, style) in enumerate(pieces):
        bounds = []
        if start is not None:
            bounds.append(f"start={start:.9f}")
        if end is not None:
            bounds.append(f"end={end:.9f}")
        steps = [f"atrim={':'.join(bounds)}"]
        if i:
            # concat lays each piece after the one before; the first keeps the track's own start.
            steps.append("asetpts=PTS-STARTPTS")
        if style == "mute":
            steps.append("volume=0")
        elif style == "bleep":
            steps.append(f"aeval=exprs='{BLEEP_LEVEL}*sin(2*PI*{BLEEP_HZ}*t)':channel_layout=same")
        chains.append(f"[s{i}]{','.join(steps)}[p{i}]")
    joined = "".join(f"[p{i}]" for i in range(len(pieces)))
    chains.append(f"{joined}concat=n={len(pieces)}:v=0:a=1[a]")
    return ";".join(chains)


def copy_pictures(
    src: Path, dst: Path, probe: Probe, sound: Sound, *, on_progress: Callable[[float], None] | None = None
) -> bool:
    """Write `src` with `sound` to `dst`, its video stream copied as it is (its SEI aside).

    False, writing nothing, when the video's codec carries data of its own besides pictures that a copy
    cannot leave behind (the caller encodes it instead).
    """
    video: list[str] = []
    if probe.has_video:
        no_sei = sei_filter(probe.video_codec)
        if no_sei is None:
            return False
        video = ["-map", "0:V:0", "-c:v", "copy", "-bsf:v", no_sei]
    args = [*source_input(src, probe), *video, *output_args(sound, probe, dst)]
    run_ffmpeg([*args, *faststart_args(dst), str(dst)], probe.duration, on_progress, source=probe)
    return True
