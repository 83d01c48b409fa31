"""A grid planned from the first seconds of a stream is the start of the grid of the whole stream."""

from __future__ import annotations

import random

import pytest

from mediajobs.toolkit.hls import grid as grids
from tests.toolkit.test_ladder import index_of


def keyframes(seed: int, end: float) -> list[float]:
    """Keyframes at irregular distances (0.4 to 10 s, on 25 fps frames), as encoders with scene cuts make."""
    rng = random.Random(seed)
    found, t = [0.0], 0.0
    while True:
        t = round(t + rng.choice([0.4, 1.0, 1.96, 2.0, 2.4, 3.0, 4.0, 5.2, 7.0, 9.96]), 2)
        if t >= end:
            return found
        found.append(t)


def prefix(keys: list[float], until: float) -> grids.Grid:
    return grids.on_keyframes(index_of([k for k in keys if k < until], until), complete=False)


@pytest.mark.parametrize("seed", range(40))
def test_a_keyframe_grid_planned_on_a_prefix_is_how_the_whole_streams_grid_begins(seed: int) -> None:
    keys = keyframes(seed, 120.0)
    whole = grids.on_keyframes(index_of(keys, 120.0))

    for until in (6.0, 16.0, 33.3, 60.0):
        head = prefix(keys, until)
        k = len(head)
        assert head.starts == whole.starts[:k]
        assert head.end == whole.starts[k]  # its last segment ends where the whole grid's next one starts
        assert head.end <= until


@pytest.mark.parametrize("first_s", [None, 2.0])
def test_a_fixed_grid_planned_on_a_prefix_is_how_the_whole_streams_grid_begins(first_s: float | None) -> None:
    whole = grids.fixed(index_of([0.0], 60.0), first_s=first_s)
    head = grids.fixed(index_of([0.0], 16.0), complete=False, first_s=first_s)

    assert head.starts == ((0.0, 4.0, 8.0) if first_s is None else (0.0, 2.0, 6.0, 10.0))
    assert whole.starts[: len(head) + 1] == (*head.starts, head.end)
    assert whole.target == head.target == grids.FIXED_TARGET_S >= max(whole.durations())


def test_no_segment_of_a_copied_stream_outgrows_the_target_promised_before_it_was_cut() -> None:
    # Keyframes at most MAX_GOP_S apart, placed to make the longest segments the grid allows.
    worst = [0.0, 1.96, 1.96 + grids.MAX_GOP_S, 13.96, 13.96 + grids.MAX_GOP_S]
    for case in [worst, *(keyframes(seed, 200.0) for seed in range(40))]:
        grid = grids.on_keyframes(index_of(case, case[-1] + 0.92))  # a tail short enough to be folded
        assert max(grid.durations()) <= grids.COPY_TARGET_S
    assert max(grids.on_keyframes(index_of(worst, 24.88)).durations()) > 10.9
