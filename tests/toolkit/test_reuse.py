"""Reusing a parent's ladder: the derived grid and what it copies (reuse), and moving TS segments in time."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from mediajobs.toolkit.hls import reuse, tsshift
from mediajobs.toolkit.hls.grid import Grid

FPS = Fraction(25)


def frame_times(count: int, first: float = 0.0) -> list[float]:
    return [round(first + n / 25, 6) for n in range(count)]


PARENT = Grid(tuple(float(t) for t in range(0, 24, 4)), 24.0)  # 600 frames, segments of 100


def test_an_edit_lists_kept_frames_in_runs_marking_what_it_changed() -> None:
    edit = reuse.Edit.of(FPS, 20, removed=[(3, 6), (10, 12)], changed=[(14, 16)])

    assert edit.runs == (
        reuse.Run(0, 0, 3), reuse.Run(6, 3, 4), reuse.Run(12, 7, 2),
        reuse.Run(14, 9, 2, changed=True), reuse.Run(16, 11, 4),
    )  # fmt: skip
    assert edit.frames == 15
    assert reuse.Edit.from_json(json.loads(json.dumps(edit.to_json()))) == edit


def test_a_removal_keeps_every_parent_boundary_on_a_kept_frame_and_copies_the_segments_it_left_whole() -> (
    None
):
    edit = reuse.Edit.of(FPS, 600, removed=[(128, 165)])  # 5.12-6.6 s, inside the second segment
    frames = frame_times(edit.frames)

    found = reuse.plan(PARENT, edit, frames, len(frames) / 25, keyframes=None)

    assert found.grid.starts == (0.0, 4.0, 6.52, 10.52, 14.52, 18.52)
    assert found.parents == (0, None, 2, 3, 4, 5)
    # A segment after the cut shows its frames 37 frames (1.48 s) earlier.
    assert found.shifts[2:] == pytest.approx([-1.48] * 4)
    assert found.spans() == [(1, 2)]


def test_a_copied_top_needs_a_keyframe_at_every_boundary_and_a_short_piece_joins_its_neighbour() -> None:
    clip = reuse.Edit.of(FPS, 600, removed=[(0, 95), (510, 600)])  # 3.8-20.4 s: 5 frames before 4 s
    frames = frame_times(clip.frames)
    keys = [t for t in frames if round(t * 25) % 50 in (0, 5)]  # the derived stream's keyframes

    found = reuse.plan(PARENT, clip, frames, len(frames) / 25, keyframes=keys)

    # 0.2 s before the parent's boundary at 4 s is too short a segment: it joins the next one.
    assert found.grid.starts == (0.0, 4.2, 8.2, 12.2)
    assert found.parents == (None, 2, 3, None)
    # Without a keyframe where a parent segment begins, no parent segment can be copied whole.
    with pytest.raises(reuse.NotReusable, match="whole and unchanged"):
        reuse.plan(PARENT, clip, frames, len(frames) / 25, keyframes=[0.0, 8.2])


def test_a_mask_over_everything_leaves_nothing_to_reuse() -> None:
    edit = reuse.Edit.of(FPS, 600, changed=[(0, 600)])
    with pytest.raises(reuse.NotReusable, match="whole and unchanged"):
        reuse.plan(PARENT, edit, frame_times(600), 24.0, keyframes=None)
    with pytest.raises(reuse.NotReusable, match="599 frames"):
        reuse.plan(PARENT, reuse.Edit.of(FPS, 600), frame_times(599), 24.0, keyframes=None)


def ts_timestamps(path: Path) -> list[tuple[int, int]]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=pts,dts", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [tuple(int(v) for v in line.split(",")[:2]) for line in done.stdout.split()]  # type: ignore[misc]


def pcrs(data: bytes) -> list[int]:
    found = []
    for at in range(0, len(data), 188):
        if data[at + 3] & 0x20 and data[at + 4] and data[at + 5] & 0x10:
            b = data[at + 6 : at + 11]
            found.append(b[0] << 25 | b[1] << 17 | b[2] << 9 | b[3] << 1 | b[4] >> 7)
    return found


def test_a_segment_moved_in_time_has_every_pts_dts_and_pcr_moved_and_its_pictures_untouched(
    tmp_path: Path,
) -> None:
    segment = tmp_path / "seg.ts"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3", "-c:v", "libx264",
         "-preset", "ultrafast", "-bf", "2", "-g", "25", "-copyts", "-output_ts_offset", "10", "-f", "mpegts",
         str(segment)],
        check=True,
    )  # fmt: skip
    data = segment.read_bytes()
    ticks = -1.48 * 90_000

    moved = tsshift.shift(data, round(ticks))
    (tmp_path / "moved.ts").write_bytes(moved)

    before, after = ts_timestamps(segment), ts_timestamps(tmp_path / "moved.ts")
    assert len(before) == 75 and after == [(p + round(ticks), d + round(ticks)) for p, d in before]
    assert pcrs(moved) == [p + round(ticks) for p in pcrs(data)] and pcrs(data)
    assert tsshift.shift(moved, -round(ticks)) == data  # only timestamps changed: moving back restores it
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "moved.ts"), "-f", "null", "-"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert decoded.stderr == ""


def test_bytes_that_are_not_a_transport_stream_are_refused() -> None:
    with pytest.raises(tsshift.NotTransportStream):
        tsshift.shift(b"\x47" + b"\x00" * 100, 10)
    with pytest.raises(tsshift.NotTransportStream, match="no sync byte"):
        tsshift.shift(b"<html>" + b" " * 182, 10)
