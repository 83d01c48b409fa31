"""A source's video packets, demuxed, not decoded: the one index the ladder and the smart renderer plan from.

One ffprobe pass over the packets (no decoding: about a second for an hour of 1080p from the page cache)
gives, in decode order, each packet's presentation time and keyframe flag, and the stream's codec
parameters. From that follow where every frame starts and where the keyframes are (the segment grid), the
signs that a stream copy would not play exactly as the source does (`problems`), and the display order, the
GOPs and the open GOPs' leading frames (smart rendering).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

from mediajobs import process
from mediajobs.errors import UnsupportedMedia
from mediajobs.sandbox import Limits
from mediajobs.toolkit.inputs import PROBE_CPU_S, input_args, read_limit_s, watch_pixels
from mediajobs.toolkit.probe import FFPROBE

SCAN_TIMEOUT_S = 600.0
SCAN_CPU_PER_MEDIA_S = 0.05
STREAM_FIELDS = (
    "codec_name,profile,level,pix_fmt,width,height,sample_aspect_ratio,color_range,color_space,"
    "color_transfer,color_primaries,chroma_location,field_order,r_frame_rate,avg_frame_rate,time_base,"
    "codec_tag_string"
)


@dataclass(frozen=True)
class VideoStream:
    """The codec parameters of the stream (what a re-encoded part must repeat to join it as one)."""

    codec: str
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None
    profile: str | None = None
    level: int | None = None
    pix_fmt: str | None = None
    sar: str | None = None
    color_range: str | None = None
    color_space: str | None = None
    color_transfer: str | None = None
    color_primaries: str | None = None
    chroma_location: str | None = None
    field_order: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Gop:
    """One GOP: its frames are display indices [first, end); `key` is where its keyframe shows.

    Frames [first, key) are the open GOP's leading frames: decoded after the keyframe, shown before it.
    Where keyframes split the stream cleanly (smart.gops.check), `first` is also the keyframe's decode index.
    """

    first: int
    key: int
    end: int

    @property
    def leading(self) -> int:
        return self.key - self.first


@dataclass(frozen=True)
class VideoIndex:
    """The timed packets of the first video stream, in decode order: `pts` (stream ticks) and keyframes.

    `keys` are the decode indices of keyframe packets; `end` is where the last frame ends (seconds, the
    source's own timeline). The counts are packets the index leaves out or that a copy would show wrongly.
    """

    stream: VideoStream
    start_s: float
    pts: tuple[int, ...]
    keys: tuple[int, ...]
    end: float
    untimed: int = 0
    backwards: int = 0
    discarded: int = 0
    corrupt: int = 0

    @property
    def count(self) -> int:
        """How many (timed) frames the stream has."""
        return len(self.pts)

    # --- times, as the segment grid sees them ---

    @cached_property
    def frames(self) -> list[float]:
        """Presentation times of all frames, sorted (seconds, source timeline, as ffprobe prints them)."""
        return [self.seconds(t) for t in self.shown_pts]

    @cached_property
    def keyframes(self) -> list[float]:
        """Presentation times of the keyframes, sorted (seconds, source timeline)."""
        return sorted(self.seconds(self.pts[k]) for k in self.keys)

    @property
    def start(self) -> float:
        """When the first frame is shown (seconds, source timeline)."""
        return self.frames[0]

    def seconds(self, ticks: int) -> float:
        return round(float(ticks * self.stream.time_base), 6)

    @property
    def longest_gop_s(self) -> float:
        marks = [*self.keyframes, self.end]
        return max((b - a for a, b in itertools.pairwise(marks)), default=0.0)

    @property
    def problems(self) -> list[str]:
        """Why a stream copy would not play exactly as the source does (empty when it would)."""
        found = []
        if not self.keys or self.keys[0] != 0:
            found.append("the video does not start with a keyframe")
        if len(set(self.pts)) != self.count:
            found.append("two frames share a timestamp")
        for count, what in (
            (self.untimed, "packets without a timestamp"),
            (self.backwards, "decode timestamps that go backwards"),
            (self.discarded, "packets an edit list discards"),
            (self.corrupt, "packets marked corrupt"),
        ):
            if count:
                found.append(f"{count} {what}")
        return found

    # --- display order and GOPs, as the smart renderer sees them ---

    @cached_property
    def display(self) -> tuple[int, ...]:
        """The display index of each packet, in decode order."""
        order = sorted(range(len(self.pts)), key=self.pts.__getitem__)
        position = [0] * len(order)
        for shown, packet in enumerate(order):
            position[packet] = shown
        return tuple(position)

    @cached_property
    def shown_pts(self) -> tuple[int, ...]:
        """Presentation times in display order."""
        return tuple(sorted(self.pts))

    @cached_property
    def gops(self) -> tuple[Gop, ...]:
        ends = [*self.keys[1:], self.count]
        return tuple(Gop(k, self.display[k], end) for k, end in zip(self.keys, ends, strict=True))

    @property
    def fps(self) -> Fraction:
        """The frame rate (smart.gops.check refuses a stream whose rate cannot be measured)."""
        assert self.stream.frame_rate is not None
        return self.stream.frame_rate

    @property
    def frame_ticks(self) -> float:
        """One frame's duration in stream ticks."""
        return float(1 / (self.fps * self.stream.time_base))

    @property
    def open(self) -> bool:
        return any(g.leading for g in self.gops)

    @cached_property
    def reorder(self) -> int:
        """How many frames a packet is decoded after its display slot, at most (the B-frame delay)."""
        return max(0, *(n - p for n, p in enumerate(self.display)))

    def time_s(self, frame: int) -> float:
        """Where display frame `frame` starts, in seconds from the file's start (as ffmpeg filters see it)."""
        if frame >= self.count:
            return self.time_s(self.count - 1) + float(1 / self.fps)
        return float(self.shown_pts[frame] * self.stream.time_base) - self.start_s

    def frame_at(self, t: float) -> int:
        """The first display frame whose time is at or after `t` seconds (`count` when none is)."""
        # A quarter frame of slack: a time that names a frame exactly lands on it despite rounded ticks.
        ticks = (t + self.start_s) / float(self.stream.time_base) - self.frame_ticks / 4
        return bisect.bisect_left(self.shown_pts, ticks)

    def gop_of(self, frame: int) -> int:
        """The GOP whose keyframe is the last at or before display frame `frame`."""
        return max(0, bisect.bisect_right(self.keys, frame) - 1)


def scan(
    path: str | Path, *, duration_s: float, max_pixels: int | None, until_s: float | None = None
) -> VideoIndex:
    """Every packet of the first video stream (cover pictures aside); UnsupportedMedia when there is none.

    Reads at most a little past the probed `duration_s`, with CPU time in proportion to it; with `until_s`,
    only the packets of the stream's first `until_s` seconds (a prefix: `prefix_s` says whether one
    would be shorter than the whole). The few frames ffprobe decodes to learn the codec parameters keep to
    `max_pixels` (the source's, `Probe.max_pixels`).
    """
    reach = read_limit_s(duration_s) if until_s is None else min(until_s, read_limit_s(duration_s))
    args = [FFPROBE, "-v", "error", "-select_streams", "V:0", "-of", "json=c=1", "-show_entries"]
    args += [f"packet=pts,dts,duration,flags:format=start_time:stream={STREAM_FIELDS}"]
    done = process.run(
        # ffprobe has no -t: read_intervals bounds how far it reads.
        [*args, "-read_intervals", f"%+{reach:.3f}",
         *input_args(path, max_pixels=max_pixels)],
        capture_stdout=True,
        on_stderr=watch_pixels(),
        timeout_s=SCAN_TIMEOUT_S,
        limits=Limits(cpu_s=PROBE_CPU_S + SCAN_CPU_PER_MEDIA_S * reach),
        network=False,
    )  # fmt: skip
    return parse(json.loads(done.stdout or "{}"))


def prefix_s(duration_s: float, wanted_s: float) -> float | None:
    """How much of a `duration_s` stream to index first when `wanted_s` is enough to start with: None when
    that would be (nearly) all of it."""
    return wanted_s if duration_s > 2 * wanted_s else None


def parse(data: dict[str, Any]) -> VideoIndex:
    """Build the index from ffprobe's JSON (`-show_entries packet=pts,dts,duration,flags:stream=...`)."""
    streams = data.get("streams") or []
    if not streams:
        raise UnsupportedMedia("there is no video stream")
    s = streams[0]
    time_base = _fraction(s.get("time_base"))
    if time_base is None:
        raise UnsupportedMedia("the video stream has no time base")
    pts: list[int] = []
    keys: list[int] = []
    end = 0
    last_dts: int | None = None
    untimed = backwards = discarded = corrupt = 0
    for packet in data.get("packets") or []:
        flags = str(packet.get("flags") or "")
        value, dts, duration = packet.get("pts"), packet.get("dts"), packet.get("duration")
        if not isinstance(value, int):
            untimed += 1
            continue
        discarded += "D" in flags  # an edit list hides it: a copy would show what the source does not
        corrupt += "C" in flags
        if isinstance(dts, int):
            backwards += last_dts is not None and dts <= last_dts
            last_dts = dts
        if "K" in flags:
            keys.append(len(pts))
        pts.append(value)
        end = max(end, value + (duration if isinstance(duration, int) else 0))
    if not pts:
        raise UnsupportedMedia("the video stream has no timed packets")
    stream = VideoStream(
        codec=str(s.get("codec_name") or "unknown"),
        width=int(s.get("width") or 0),
        height=int(s.get("height") or 0),
        time_base=time_base,
        frame_rate=_frame_rate(s, pts, time_base),
        profile=s.get("profile"),
        level=s.get("level"),
        pix_fmt=s.get("pix_fmt"),
        sar=s.get("sample_aspect_ratio"),
        color_range=s.get("color_range"),
        color_space=s.get("color_space"),
        color_transfer=s.get("color_transfer"),
        color_primaries=s.get("color_primaries"),
        chroma_location=s.get("chroma_location"),
        field_order=s.get("field_order"),
        tag=s.get("codec_tag_string"),
    )
    start = _float((data.get("format") or {}).get("start_time")) or 0.0
    last = round(float(end * time_base), 6)
    return VideoIndex(
        stream, start, tuple(pts), tuple(keys), max(last, round(float(max(pts) * time_base), 6)),
        untimed=untimed, backwards=backwards, discarded=discarded, corrupt=corrupt,
    )  # fmt: skip


def _frame_rate(stream: dict[str, Any], pts: list[int], time_base: Fraction) -> Fraction | None:
    """The nominal rate (r_frame_rate, else avg) when the packets agree with it, else what they measure."""
    low, high = min(pts), max(pts)
    if high <= low:
        return None
    measured = (len(pts) - 1) / ((high - low) * time_base)
    for key in ("r_frame_rate", "avg_frame_rate"):
        nominal = _fraction(stream.get(key))
        if nominal and abs(nominal - measured) / measured < Fraction(1, 500):
            return nominal
    return Fraction(measured).limit_denominator(1001)


def _fraction(value: Any) -> Fraction | None:
    try:
        result = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return result if result > 0 else None


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None
