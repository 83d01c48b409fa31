"""A derived asset's segment grid from its parent's: which segments an edit left alone, and where they went.

An edit (a mask, a frame removal, a clip) keeps some of the parent's frames, in order, and changes some of
them; `Edit` says which, as runs of frames (display order, both assets constant frame rate). The derived
grid keeps a segment boundary wherever the parent had one on a kept frame (and, for a copied top rendition,
the derived stream has a keyframe there), so every parent segment whose frames all stay, unchanged and
together, is a derived segment as it is: its files in every encoded rung are copied, moved in time by what
was cut before it (`tsshift`). The other derived segments are encoded again, at each rung's settings.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from mediajobs.toolkit.hls.grid import TARGET_S, Grid


@dataclass(frozen=True)
class Run:
    """Parent frames [parent_first, parent_first + count) are derived frames [derived_first, ...)."""

    parent_first: int
    derived_first: int
    count: int
    changed: bool = False


@dataclass(frozen=True)
class Edit:
    """How a derived asset's frames come from its parent's: `runs` in derived order, at `fps`."""

    fps: Fraction
    runs: tuple[Run, ...]

    @property
    def frames(self) -> int:
        return sum(r.count for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        runs = [[r.parent_first, r.derived_first, r.count, r.changed] for r in self.runs]
        return {"fps": str(self.fps), "runs": runs}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Edit:
        runs = tuple(Run(int(a), int(b), int(c), bool(d)) for a, b, c, d in data["runs"])
        return Edit(Fraction(str(data["fps"])), runs)

    @staticmethod
    def of(
        fps: Fraction,
        frames: int,
        *,
        removed: Sequence[tuple[int, int]] = (),
        changed: Sequence[tuple[int, int]] = (),
    ) -> Edit:
        """The edit that keeps a stream's `frames` but the `removed` ranges and changes the `changed` ones
        (display frames [first, end)), the rest in order."""
        kept = [True] * frames
        touched = [False] * frames
        for ranges, marks, value in ((removed, kept, False), (changed, touched, True)):
            for first, end in ranges:
                for p in range(max(0, first), min(frames, end)):
                    marks[p] = value
        runs: list[Run] = []
        shown = 0
        for p in range(frames):
            if not kept[p]:
                continue
            last = runs[-1] if runs else None
            if last and last.parent_first + last.count == p and last.changed == touched[p]:
                runs[-1] = Run(last.parent_first, last.derived_first, last.count + 1, last.changed)
            else:
                runs.append(Run(p, shown, 1, touched[p]))
            shown += 1
        return Edit(fps, tuple(runs))

    def derived_of(self, parent_frame: int) -> tuple[int, Run] | None:
        """The derived frame showing `parent_frame` and its run, or None when the edit removed it."""
        for run in self.runs:
            if run.parent_first <= parent_frame < run.parent_first + run.count:
                return run.derived_first + parent_frame - run.parent_first, run
        return None


@dataclass(frozen=True)
class Reuse:
    """The derived grid, and for each of its segments the parent segment it copies (None: encode it) and
    how far that copy moves in time (seconds)."""

    grid: Grid
    parents: tuple[int | None, ...]
    shifts: tuple[float, ...]

    @property
    def copied(self) -> int:
        return sum(p is not None for p in self.parents)

    def spans(self) -> list[tuple[int, int]]:
        """[first, stop) runs of derived segments to encode."""
        found: list[tuple[int, int]] = []
        for k, parent in enumerate(self.parents):
            if parent is not None:
                continue
            if found and found[-1][1] == k:
                found[-1] = (found[-1][0], k + 1)
            else:
                found.append((k, k + 1))
        return found


class NotReusable(Exception):
    """The parent's ladder cannot give the derived one anything (the message says why)."""


def plan(
    parent: Grid,
    edit: Edit,
    frames: list[float],
    end: float,
    *,
    keyframes: list[float] | None,
    target_s: float = TARGET_S,
) -> Reuse:
    """The derived grid over the derived stream's frame times `frames` (ending at `end`).

    `keyframes`: where the derived stream may be cut when its own stream is copied on top (None when every
    rendition is encoded and takes a keyframe anywhere).
    """
    if len(frames) != edit.frames:
        raise NotReusable(f"the derived stream has {len(frames)} frames, the edit says {edit.frames}")
    step = 1 / edit.fps
    # Parent segment i covers parent frames [first[i], first[i + 1]); the grid starts on frames.
    first = [round((t - parent.starts[0]) * edit.fps) for t in parent.starts]
    total = first[-1] + round((parent.end - parent.starts[-1]) * edit.fps)
    first.append(max(total, first[-1] + 1))
    bounds = {0}
    for i in range(1, len(parent)):
        found = edit.derived_of(first[i])
        if found is not None:
            bounds.add(found[0])
    if keyframes is not None:
        cuttable = {bisect.bisect_left(frames, t - float(step) / 4) for t in keyframes}
        bounds &= cuttable | {0}
    starts = _fold_short(sorted(bounds), frames, end, target_s)
    grid = Grid(tuple(frames[b] for b in starts), end)
    parents: list[int | None] = []
    shifts: list[float] = []
    limits = [*starts, len(frames)]
    for k in range(len(starts)):
        match = _same_segment(first, edit, limits[k], limits[k + 1])
        parents.append(match)
        shifts.append(0.0 if match is None else frames[limits[k]] - parent.starts[match])
    if not any(p is not None for p in parents):
        raise NotReusable("no segment of the parent's ladder stays whole and unchanged in the derived asset")
    return Reuse(grid, tuple(parents), tuple(shifts))


def _fold_short(starts: list[int], frames: list[float], end: float, target_s: float) -> list[int]:
    """Drop boundaries that leave a segment shorter than a quarter target (a cut near a boundary, a clip
    starting just before one): the short segment joins its neighbour, as a grid's tiny tail does."""
    edges = [*(frames[b] for b in starts), end]
    kept = [starts[0]]
    for k in range(1, len(starts)):
        if edges[k] - frames[kept[-1]] >= target_s / 4:
            kept.append(starts[k])
    if len(kept) > 1 and end - frames[kept[-1]] < target_s / 4:
        kept.pop()
    return kept


def _same_segment(first: list[int], edit: Edit, start: int, stop: int) -> int | None:
    """The parent segment that is derived frames [start, stop) exactly, every frame kept and unchanged."""
    for run in edit.runs:
        if run.changed or not run.derived_first <= start < run.derived_first + run.count:
            continue
        parent_start = run.parent_first + start - run.derived_first
        i = bisect.bisect_left(first, parent_start)
        if i >= len(first) - 1 or first[i] != parent_start:
            return None
        frames = first[i + 1] - first[i]
        inside = stop - start == frames and start + frames <= run.derived_first + run.count
        return i if inside else None
    return None
