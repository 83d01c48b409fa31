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
from dataclasses import dataclass

from mediajobs.toolkit.packets import VideoIndex

TARGET_S = 4.0
# A start is passed to ffmpeg this much early: forced keyframes and segment cuts take "the first frame at or
# after" a time, and a frame time printed to microseconds may round up past the frame. Real frames are
# at least 1/240 s apart (probe.MAX_FPS).
EARLY_S = 0.0005


@dataclass(frozen=True)
class Grid:
    """Segment start times (first frame of each) and where the last segment ends."""

    starts: tuple[float, ...]
    end: float

    def __len__(self) -> int:
        return len(self.starts)

    def durations(self) -> list[float]:
        bounds = [*self.starts, self.end]
        return [round(b - a, 6) for a, b in itertools.pairwise(bounds)]

    def span(self, first: int, stop: int) -> tuple[float, float | None]:
        """(start, end) times to encode segments [first, stop); end None for the last segment."""
        return self.starts[first], (self.starts[stop] if stop < len(self.starts) else None)

    def public(self) -> dict[str, object]:
        return {"starts": list(self.starts), "end": self.end}

    @staticmethod
    def from_public(data: dict[str, object]) -> Grid:
        starts = data["starts"]
        assert isinstance(starts, list)
        return Grid(tuple(float(s) for s in starts), float(data["end"]))  # type: ignore[arg-type]


def on_keyframes(index: VideoIndex, target_s: float = TARGET_S) -> Grid:
    """Segments that start at source keyframes, each as close to `target_s` long as the keyframes allow."""
    keys = index.keyframes
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
        starts.append(keys[best])
        i = best
    return _trim_tail(starts, index.end, target_s)


def fixed(index: VideoIndex, target_s: float = TARGET_S) -> Grid:
    """Segments every `target_s` from the first frame, each starting at the first frame at or after."""
    frames = index.frames
    starts = [frames[0]]
    k = 1
    while True:
        j = bisect.bisect_left(frames, frames[0] + k * target_s - EARLY_S)
        if j >= len(frames):
            break
        if frames[j] > starts[-1]:
            starts.append(frames[j])
        k += 1
    return _trim_tail(starts, index.end, target_s)


def _trim_tail(starts: list[float], end: float, target_s: float) -> Grid:
    # A last segment of a few frames would be a stall for a player; it joins the one before.
    if len(starts) > 1 and end - starts[-1] < target_s / 4:
        starts.pop()
    return Grid(tuple(starts), end)


def chunks(grid: Grid, chunk_s: float, *, short_first: bool = False) -> list[tuple[int, int]]:
    """[first, stop) segment ranges of about `chunk_s` each, whole segments.

    `short_first`: the first chunk is one segment, so that the first picture plays as soon as possible.
    """
    n = len(grid)
    durations = grid.durations()
    ranges: list[tuple[int, int]] = []
    start = 0
    if short_first and n > 1:
        ranges.append((0, 1))
        start = 1
    while start < n:
        stop, length = start, 0.0
        while stop < n and (length < chunk_s or stop == start):
            length += durations[stop]
            stop += 1
        # A last chunk much shorter than the others is folded into its neighbour.
        if stop < n and sum(durations[stop:]) < chunk_s / 3:
            stop = n
        ranges.append((start, stop))
        start = stop
    return ranges


def target_duration(grid: Grid) -> int:
    """EXT-X-TARGETDURATION: every EXTINF rounded to the nearest integer must be at most this."""
    return max(1, math.ceil(max(grid.durations(), default=1.0) - 0.001))
