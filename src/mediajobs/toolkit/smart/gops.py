"""A video stream's GOP index from its packets, and whether smart rendering can reproduce it exactly.

Read with ffprobe's demuxer only (no decoding): one packet per frame in decode order, with its presentation
time and keyframe flag. From that follow the display order, the keyframes, the open GOPs (frames decoded
after a keyframe but shown before it, which lean on the previous GOP) and the longest GOP.

Smart rendering copies whole GOPs and re-encodes the rest, so the index must describe the pictures exactly:
one codec ffmpeg and browsers splice well (H.264, HEVC), constant frame rate, progressive frames, every
packet timed, and keyframes that split the stream cleanly: the first k packets in decode order show exactly
the first k frames, whatever their reordering inside. `InexactSource` carries the reason when not.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

from mediajobs import process
from mediajobs.toolkit.inputs import input_args, probe_limits

FFPROBE = "ffprobe"
INDEX_TIMEOUT_S = 300.0
SMART_CODECS = ("h264", "hevc")
# Re-encoding a boundary GOP is the price of each cut; past this, keyframes are too sparse to be worth it.
MAX_GOP_S = 10.0
# Every frame must sit this close (in frame durations) to its slot on a constant-rate grid.
GRID_TOLERANCE = 0.25
INTERLACED = ("tt", "bb", "tb", "bt")


class InexactSource(Exception):
    """The source cannot be smart-rendered exactly; the message says why, for the job result."""


@dataclass(frozen=True)
class VideoStream:
    """The codec parameters a re-encoded part must repeat for the joined stream to decode as one."""

    codec: str
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction
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
    Because keyframes split the stream cleanly, `first` is also the keyframe's decode index.
    """

    first: int
    key: int
    end: int

    @property
    def leading(self) -> int:
        return self.key - self.first


@dataclass(frozen=True)
class GopIndex:
    """The packets of a video stream: `pts` (stream ticks) and keyframe flags, in decode order."""

    stream: VideoStream
    start_s: float
    pts: tuple[int, ...]
    keys: tuple[int, ...]

    @property
    def frames(self) -> int:
        return len(self.pts)

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
        ends = [*self.keys[1:], self.frames]
        return tuple(Gop(k, self.display[k], end) for k, end in zip(self.keys, ends, strict=True))

    @property
    def fps(self) -> Fraction:
        return self.stream.frame_rate

    @property
    def frame_ticks(self) -> float:
        """One frame's duration in stream ticks."""
        return float(1 / (self.fps * self.stream.time_base))

    @property
    def open(self) -> bool:
        return any(g.leading for g in self.gops)

    @property
    def longest_gop_s(self) -> float:
        return max(g.end - g.first for g in self.gops) / float(self.fps)

    @cached_property
    def reorder(self) -> int:
        """How many frames a packet is decoded after its display slot, at most (the B-frame delay)."""
        return max(0, *(n - p for n, p in enumerate(self.display)))

    def time_s(self, frame: int) -> float:
        """Where display frame `frame` starts, in seconds from the file's start (as ffmpeg filters see it)."""
        if frame >= self.frames:
            return self.time_s(self.frames - 1) + float(1 / self.fps)
        return float(self.shown_pts[frame] * self.stream.time_base) - self.start_s

    def frame_at(self, t: float) -> int:
        """The first display frame whose time is at or after `t` seconds (`frames` when none is)."""
        # A quarter frame of slack: a time that names a frame exactly lands on it despite rounded ticks.
        ticks = (t + self.start_s) / float(self.stream.time_base) - self.frame_ticks / 4
        low, high = 0, self.frames
        while low < high:
            mid = (low + high) // 2
            if self.shown_pts[mid] < ticks:
                low = mid + 1
            else:
                high = mid
        return low

    def gop_of(self, frame: int) -> int:
        """The GOP that shows display frame `frame`."""
        low, high = 0, len(self.keys) - 1
        while low < high:
            mid = (low + high + 1) // 2
            if self.keys[mid] <= frame:
                low = mid
            else:
                high = mid - 1
        return low


def read_index(path: str | Path, *, max_gop_s: float = MAX_GOP_S) -> GopIndex:
    """Index the first video stream of `path`; raise InexactSource when smart rendering cannot be exact."""
    args = [
        FFPROBE, "-v", "error", "-select_streams", "v:0", "-print_format", "json", "-show_entries",
        "packet=pts,flags:format=start_time:stream=codec_name,profile,level,pix_fmt,width,height,"
        "sample_aspect_ratio,color_range,color_space,color_transfer,color_primaries,chroma_location,"
        "field_order,r_frame_rate,avg_frame_rate,time_base,codec_tag_string",
        *input_args(path),
    ]  # fmt: skip
    done = process.run(
        args,
        capture_stdout=True,
        timeout_s=INDEX_TIMEOUT_S,
        check=False,
        limits=probe_limits(),
        network=False,
    )
    if done.returncode != 0:
        raise InexactSource(f"ffprobe could not index the packets: {process.last_words(done.stderr_tail)}")
    index = parse(json.loads(done.stdout or "{}"))
    check(index, max_gop_s=max_gop_s)
    return index


def parse(data: dict[str, Any]) -> GopIndex:
    """Build the index from ffprobe's JSON; raise InexactSource for packets it cannot place."""
    streams = data.get("streams") or []
    if not streams:
        raise InexactSource("there is no video stream")
    s = streams[0]
    codec = str(s.get("codec_name") or "unknown")
    if codec not in SMART_CODECS:
        raise InexactSource(f"the video is {codec}, not H.264 or HEVC")
    packets = data.get("packets") or []
    if len(packets) < 2:
        raise InexactSource("the video has fewer than two frames")
    pts: list[int] = []
    keys: list[int] = []
    for n, packet in enumerate(packets):
        flags = str(packet.get("flags") or "")
        if "D" in flags or "C" in flags:
            raise InexactSource("some packets are marked corrupt or hidden by an edit list")
        value = packet.get("pts")
        if not isinstance(value, int):
            raise InexactSource("some packets have no presentation time")
        pts.append(value)
        if "K" in flags:
            keys.append(n)
    time_base = _fraction(s.get("time_base"))
    if time_base is None or time_base <= 0:
        raise InexactSource("the video stream has no time base")
    stream = VideoStream(
        codec=codec,
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
    return GopIndex(stream=stream, start_s=start, pts=tuple(pts), keys=tuple(keys))


def check(index: GopIndex, *, max_gop_s: float = MAX_GOP_S) -> None:
    """Raise InexactSource unless copying GOPs of `index` and re-encoding the rest reproduces it exactly."""
    s = index.stream
    if s.field_order in INTERLACED:
        raise InexactSource("the video is interlaced")
    if not s.width or not s.height:
        raise InexactSource("the video has no picture size")
    if len(set(index.pts)) != index.frames:
        raise InexactSource("two packets share a presentation time")
    if not index.keys or index.keys[0] != 0:
        raise InexactSource("the video does not start with a keyframe")
    ticks, shown = index.frame_ticks, index.shown_pts
    for p, t in enumerate(shown):
        if abs(t - shown[0] - p * ticks) > GRID_TOLERANCE * ticks:
            raise InexactSource(f"the frame rate varies (frame {p} is off the {float(index.fps):g} fps grid)")
    # Keyframes must split decode order cleanly: packets before keyframe k show exactly frames 0..k-1.
    highest = -1
    boundaries = set(index.keys)
    for n, p in enumerate(index.display):
        if n in boundaries and highest >= n:
            raise InexactSource(f"frames before the keyframe at packet {n} are shown after it")
        highest = max(highest, p)
    if index.gops[0].leading:
        raise InexactSource("the first keyframe has frames before it that cannot be decoded")
    if index.longest_gop_s > max_gop_s:
        raise InexactSource(
            f"keyframes are up to {index.longest_gop_s:.1f} s apart, more than the {max_gop_s:g} s "
            "a smart render re-encodes per cut"
        )


def _frame_rate(stream: dict[str, Any], pts: list[int], time_base: Fraction) -> Fraction:
    """The nominal rate (r_frame_rate, else avg) when the packets agree with it, else what they measure."""
    shown = sorted(pts)
    measured = (len(shown) - 1) / ((shown[-1] - shown[0]) * time_base) if shown[-1] > shown[0] else None
    if measured is None:
        raise InexactSource("all frames have the same presentation time")
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
