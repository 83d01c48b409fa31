"""The segment grid of an HLS version: where every segment of every rendition starts, and its chunks.

One grid serves all renditions and the audio, so segment N covers the same pictures and the same instants
in each (players switch between renditions at segment boundaries), and so a chunk of segments can be encoded
anywhere and joined without seams. Times are the source's own presentation times (encoders run with
`-copyts`), and every start is the time of an actual frame, so that "the first frame at or after" a start
is that frame however the decimal is rounded.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, replace

from mediajobs.toolkit.packets import VideoIndex

TARGET_S = 4.0
# A start is passed to ffmpeg this much early: forced keyframes and segment cuts take "the first frame at or
# after" a time, and a frame time printed to microseconds may round up past the frame. Real frames are
# at least 1/240 s apart (probe.MAX_FPS).
EARLY_S = 0.0005
# The longest segment `on_keyframes` can make of a stream whose keyframes are at most MAX_GOP_S apart: a
# keyframe just under half a target after a start, the next a whole GOP later, and a folded tiny tail.
MAX_GOP_S = 10.0
COPY_TARGET_S = math.ceil(TARGET_S / 2 + MAX_GOP_S + TARGET_S / 4)
# The longest segment of a fixed grid: a target and a folded tail. Its playlists say so from the start, so a
# growing playlist keeps the target it first had.
FIXED_TARGET_S = math.ceil(TARGET_S * 5 / 4)
# The end of a prefix index a grid does not plan on: frames shown there may be decoded after the prefix.
PREFIX_MARGIN_S = 1.0


@dataclass(frozen=True)
class Grid:
    """Segment start times (first frame of each) and where the last segment ends.

    `target`: an EXT-X-TARGETDURATION promised before the whole grid was known (a stream published while
    it is cut, `COPY_TARGET_S`); its playlists keep it to the end, as RFC 8216 wants.
    """

    starts: tuple[float, ...]
    end: float
    target: int = 0

    def __len__(self) -> int:
        return len(self.starts)

    def durations(self) -> list[float]:
        bounds = [*self.starts, self.end]
        return [round(b - a, 6) for a, b in itertools.pairwise(bounds)]

    def span(self, first: int, stop: int) -> tuple[float, float | None]:
        """(start, end) times to encode segments [first, stop); end None for the last segment."""
        return self.starts[first], (self.starts[stop] if stop < len(self.starts) else None)

    def public(self) -> dict[str, object]:
        return {"starts": list(self.starts), "end": self.end, "target": self.target}

    @staticmethod
    def from_public(data: dict[str, object]) -> Grid:
        starts = data["starts"]
        assert isinstance(starts, list)
        target = int(data.get("target") or 0)  # type: ignore[call-overload]
        return Grid(tuple(float(s) for s in starts), float(data["end"]), target)  # type: ignore[arg-type]


def on_keyframes(index: VideoIndex, target_s: float = TARGET_S, *, complete: bool = True) -> Grid:
    """Segments that start at source keyframes, each as close to `target_s` long as the keyframes allow.

    `complete=False`: the index is a prefix of the stream (`packets.scan(until_s=...)`); the grid holds only
    the segments no later keyframe can change, so they are the first segments of the whole stream's grid.
    """
    keys = known(index.keyframes, index, complete)
    starts = [keys[0]]
    i = 0
    while True:
        goal = starts[-1] + target_s
        # Candidates: keyframes at least half a target after the last start; take the one nearest the goal.
        j = bisect.bisect_left(keys, starts[-1] + target_s / 2, lo=i + 1)
        if j >= len(keys):
            break
        best = j
        while best + 1 < len(keys) and abs(keys[best + 1] - goal) < abs(keys[best] - goal):
            best += 1
        if not complete and best + 1 == len(keys) and keys[best] < goal:
            break  # a keyframe not read yet may be nearer the goal
        starts.append(keys[best])
        i = best
    return _trim_tail(starts, index.end, target_s) if complete else _prefix(starts)


def fixed(
    index: VideoIndex, target_s: float = TARGET_S, *, complete: bool = True, first_s: float | None = None
) -> Grid:
    """Segments every `target_s` from the first frame, each starting at the first frame at or after.

    `first_s`: the first segment is this long instead (a short first segment is made, and plays, first).
    `complete=False`: as for `on_keyframes`, only the first segments, those the rest of the stream cannot
    change. Every segment is at most `target_s` and a folded tail long: FIXED_TARGET_S.
    """
    frames = known(index.frames, index, complete)
    starts = [frames[0]]
    lead = target_s if first_s is None else first_s
    k = 0
    while True:
        j = bisect.bisect_left(frames, frames[0] + lead + k * target_s - EARLY_S)
        if j >= len(frames):
            break
        if frames[j] > starts[-1]:
            starts.append(frames[j])
        k += 1
    grid = _trim_tail(starts, index.end, target_s) if complete else _prefix(starts)
    return replace(grid, target=FIXED_TARGET_S)


def known(times: list[float], index: VideoIndex, complete: bool) -> list[float]:
    """`times` a grid may be planned on: all of them, or those of a prefix that later packets cannot change.

    A prefix read up to a time may still lack a frame or two reordered past its end.
    """
    if complete:
        return times
    return [t for t in times if t < index.end - PREFIX_MARGIN_S] or times[:1]


def _prefix(starts: list[float]) -> Grid:
    # The last start's segment ends where the prefix does not reach: it is not part of the grid yet.
    return Grid(tuple(starts[:-1]), starts[-1])


def _trim_tail(starts: list[float], end: float, target_s: float) -> Grid:
    # A last segment of a few frames would be a stall for a player; it joins the one before.
    if len(starts) > 1 and end - starts[-1] < target_s / 4:
        starts.pop()
    return Grid(tuple(starts), end)


def chunks(grid: Grid, chunk_s: float, *, short_first: bool = False) -> list[tuple[int, int]]:
    """[first, stop) segment ranges of whole segments, as many as `chunk_s` makes of the grid and as equal
    as its segments allow: workers that take them side by side end together, where equal chunks of
    `chunk_s` and a short remainder leave one worker with the remainder and the others idle.

    `short_first`: the first chunk is one segment, so that the first picture plays as soon as possible.
    """
    n = len(grid)
    durations = grid.durations()
    ranges: list[tuple[int, int]] = []
    start = 0
    if short_first and n > 1:
        ranges.append((0, 1))
        start = 1
    if start >= n:
        return ranges
    ends = list(itertools.accumulate(durations[start:]))  # ends[i]: where segment start + i ends
    total = ends[-1]
    count = max(1, min(len(ends), round(total / chunk_s)))
    edges = [start]
    for k in range(1, count):
        # The segment edge nearest this share of the whole, after the previous one.
        target = total * k / count
        stop = start + 1 + min(range(len(ends) - 1), key=lambda i: abs(ends[i] - target))
        if edges[-1] < stop < n:
            edges.append(stop)
    edges.append(n)
    return ranges + list(itertools.pairwise(edges))


def target_duration(grid: Grid) -> int:
    """EXT-X-TARGETDURATION: every EXTINF rounded to the nearest integer must be at most this."""
    return max(1, grid.target, math.ceil(max(grid.durations(), default=1.0) - 0.001))
