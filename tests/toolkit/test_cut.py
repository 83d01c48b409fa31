from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs.errors import JobCancelled, PermanentError
from mediajobs.process import cancellable
from mediajobs.toolkit.cut import InvalidRanges, kept_segments, merge_ranges, output_duration, remove_frames
from mediajobs.toolkit.probe import probe
from tests.toolkit.frames import frame_index, gray_frames, mono_pcm, running_ffmpeg, tone_onsets
from tests.toolkit.opsclips import (
    FPS,
    SIZE,
    CancelAtFirstProgress,
    cached_clip,
    counter_clip,
    long_clip,
    watching_progress,
)

BEEPS = (10, 40, 63, 110, 140, 175)  # 40 lies in a removed range; 63 is the first frame after a cut
RANGES = [(5.02, 5.5), (1.0, 2.5), (2.0, 2.2)]  # unordered, overlapping, one end between two frames
SURVIVORS = [n for n in range(200) if not (25 <= n < 63 or 126 <= n < 138)]


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "counter.mp4", lambda path: counter_clip(path, beeps=BEEPS))


@pytest.fixture(scope="module")
def silent_counter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "counter-silent.mp4", lambda path: counter_clip(path, audio=False))


@pytest.fixture(scope="module")
def cut(counter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("cut") / "cut.mp4"
    return remove_frames(counter, dst, probe(counter), RANGES)


@pytest.fixture(scope="module")
def long(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "long.mp4", long_clip)


def indices(path: Path) -> list[int]:
    return [frame_index(frame) for frame in gray_frames(path, *SIZE)]


def test_output_holds_exactly_the_frames_outside_the_ranges(counter: Path, cut: Path) -> None:
    assert indices(counter) == list(range(200))
    assert indices(cut) == SURVIVORS


def test_output_duration_is_source_minus_removed(cut: Path) -> None:
    removed = (2.5 - 1.0) + (5.5 - 5.02)
    assert probe(cut).duration == pytest.approx(8.0 - removed, abs=1 / FPS)
    assert output_duration(merge_ranges(RANGES, 8.0, fps=FPS), 8.0) == pytest.approx(len(SURVIVORS) / FPS)


def test_beeps_stay_on_their_frames_across_cuts(cut: Path) -> None:
    frames = indices(cut)
    expected = [frames.index(n) / FPS for n in BEEPS if n in frames]
    heard = tone_onsets(mono_pcm(cut))
    assert len(heard) == len(expected) == len(BEEPS) - 1
    for want, got in zip(expected, heard, strict=True):
        assert got == pytest.approx(want, abs=0.01)


def test_clip_without_audio_is_cut_by_frames(silent_counter: Path, tmp_path: Path) -> None:
    out = remove_frames(silent_counter, tmp_path / "cut.mp4", probe(silent_counter), RANGES)
    assert indices(out) == SURVIVORS
    assert not probe(out).has_audio


def test_merge_ranges_sorts_merges_and_clamps() -> None:
    ranges = [(6.0, 9.0), (1.0, 2.0), (1.5, 3.0), (3.0, 4.0)]
    assert merge_ranges(ranges, 8.0) == [(1.0, 4.0), (6.0, 8.0)]
    assert kept_segments([(1.0, 4.0), (6.0, 8.0)], 8.0) == [(0.0, 1.0), (4.0, 6.0)]
    assert output_duration([(1.0, 4.0), (6.0, 8.0)], 8.0) == 3.0


def test_merge_ranges_snaps_to_the_first_frame_at_or_after_each_end() -> None:
    assert merge_ranges([(1.01, 2.5)], 8.0, fps=25) == [(1.04, 2.52)]
    assert merge_ranges([(1.04, 2.52)], 8.0, fps=25) == [(1.04, 2.52)]


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ([], "ranges must list at least one range"),
        ([(1.0, 2.0), (-1.0, 2.0)], "ranges[1].start must not be negative"),
        ([(1.0, 2.0), (3.0, 3.0)], "ranges[1].end (3) must be after its start (3)"),
        ([(1.0, 2.0), (8.0, 9.0)], "ranges[1] starts at 8 s, at or after the 8 s video ends"),
        ([(4.0, 8.0), (0.0, 4.5)], "ranges remove the whole video"),
        ([(1.01, 1.02)], "ranges fall between frames and remove nothing"),
    ],
)
def test_merge_ranges_rejects_ranges_it_cannot_apply(ranges: list[tuple[float, float]], message: str) -> None:
    with pytest.raises(InvalidRanges) as caught:
        merge_ranges(ranges, 8.0, fps=25)
    assert isinstance(caught.value, PermanentError) and caught.value.code == "invalid_params"
    assert message in str(caught.value)


def test_progress_counts_against_the_output_duration(
    long: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with watching_progress(monkeypatch, expected_s=15.0) as log:
        out = tmp_path / "out.mp4"
        remove_frames(long, out, probe(long), [(0.0, 15.0)], threads=1, on_progress=log.fraction)
    log.assert_faithful()


def test_cancel_stops_ffmpeg_within_two_seconds(long: Path, tmp_path: Path) -> None:
    stop = CancelAtFirstProgress()
    dst = tmp_path / "cancelled.mp4"
    with cancellable(stop.event), pytest.raises(JobCancelled):
        remove_frames(long, dst, probe(long), [(3.0, 4.0)], on_progress=stop)
    assert stop.seconds_since() < 2.0
    assert running_ffmpeg(dst) == []
