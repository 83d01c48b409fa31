from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mediajobs.errors import InvalidParams, JobCancelled
from mediajobs.process import cancellable
from mediajobs.toolkit.mask import InvalidRegion, Region, apply_mask
from mediajobs.toolkit.packets import VideoIndex, VideoStream
from mediajobs.toolkit.probe import probe
from mediajobs.toolkit.smart.gops import read_index
from mediajobs.toolkit.smart.pieces import copy_args
from mediajobs.toolkit.smart.plan import Span, plan
from mediajobs.toolkit.smart.render import smart_cut, smart_mask
from tests.toolkit.frames import ffmpeg, mono_pcm, running_ffmpeg, tone_onsets
from tests.toolkit.opsclips import CancelAtFirstProgress, cached_clip, long_clip
from tests.toolkit.smartclips import (
    AUDIO_FRAME_S,
    BEEPS,
    FPS,
    RANGES,
    REMOVED,
    SECONDS,
    assert_timestamps_clean,
    decode_errors,
    framemd5,
    gray,
    indices,
    kept,
    keyframe_positions,
    marked_clip,
    packets,
    parameter_sets_at_every_keyframe,
    psnr,
    video_stream,
)

LEAD = 3  # at most three leading B-frames before an open GOP's keyframe
MATCHED = ("profile", "level", "pix_fmt", "width", "height", "sample_aspect_ratio", "color_range",
           "color_space", "color_transfer", "color_primaries")  # fmt: skip
VARIANTS = {
    "h264-closed": {"codec": "h264", "open_gop": False},
    "h264-open": {"codec": "h264", "open_gop": True},
    "hevc-open": {"codec": "hevc", "open_gop": True},
}
# x264's open GOPs start at I-frames that are not IDRs (recovery points): a copy can only continue the
# source's start, never begin after a cut. x264's closed GOPs start at IDRs; x265's open ones at CRAs, which
# a copy begins as BLAs.
FRESH_KEYFRAMES = {"h264-closed": True, "h264-open": False, "hevc-open": True}


@pytest.fixture(scope="module", params=list(VARIANTS))
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    name = str(request.param)
    return cached_clip(tmp_path_factory, f"smart-{name}.mp4", lambda p: marked_clip(p, **VARIANTS[name]))


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "smart-h264-closed.mp4", lambda p: marked_clip(p))


def touched_gops(keys: list[int], frames: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    """The display GOPs [key, next key) that hold any of `frames` (ranges)."""
    bounds = list(zip(keys, [*keys[1:], total], strict=True))
    return [(a, b) for a, b in bounds if any(f < b and e > a for f, e in frames)]


def split_copied(src: Path, out: Path, expected: list[int]) -> tuple[list[int], list[int]]:
    """Source frames the output shows bit for bit, and those it shows re-encoded, in output order."""
    source_md5, out_md5 = framemd5(src), framemd5(out)
    same = {p for p, md5 in zip(expected, out_md5, strict=True) if md5 == source_md5[p]}
    return [p for p in expected if p in same], [p for p in expected if p not in same]


def assert_decodes_like_the_source(src: Path, out: Path) -> None:
    assert decode_errors(out) == ""
    assert_timestamps_clean(out)
    before, after = video_stream(src), video_stream(out)
    assert {k: after.get(k) for k in MATCHED} == {k: before.get(k) for k in MATCHED}
    assert parameter_sets_at_every_keyframe(out, before["codec_name"])


def test_smart_cut_copies_untouched_gops_bit_for_bit_and_reencodes_only_the_cut_ones(
    source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cut.mp4"
    report = smart_cut(source, out, probe(source), RANGES)
    expected = kept()
    assert report.render == "smart" and report.reason is None
    frames = gray(out)
    assert indices(frames) == expected  # exactly the source's frames minus the removed ones
    copied, reencoded = split_copied(source, out, expected)
    reference = gray(source)
    for n, p in enumerate(expected):
        if p in reencoded:
            assert psnr(frames[n], reference[p]) >= 40, p
    keys = keyframe_positions(source)
    touched = touched_gops(keys, REMOVED, len(reference))
    fresh = FRESH_KEYFRAMES[source.stem.removeprefix("smart-")]
    if not fresh:
        # Everything from the first GOP holding a cut on (and its leading frames) is re-encoded.
        touched = [(touched[0][0], len(reference))]
    # Re-encoded: only frames of GOPs holding a cut (and leading frames, shown just before their keyframe).
    assert all(any(a - LEAD <= p < b for a, b in touched) for p in reencoded)
    untouched = [p for p in expected if not any(a - LEAD <= p < b for a, b in touched)]
    assert set(untouched) <= set(copied)
    assert report.copied_s == pytest.approx(len(copied) / FPS)
    assert report.reencoded_s == pytest.approx(len(reencoded) / FPS)
    assert len(copied) >= (100 if fresh else 45)
    assert_decodes_like_the_source(source, out)


def test_smart_cut_encodes_sound_once_and_keeps_it_on_its_frames_at_every_join(
    closed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cut.mp4"
    smart_cut(closed, out, probe(closed), RANGES)
    expected = kept()
    heard = tone_onsets(mono_pcm(out))
    want = [expected.index(n) / FPS for n in BEEPS]
    assert len(heard) == len(want)
    for got, at in zip(heard, want, strict=True):
        assert abs(got - at) <= AUDIO_FRAME_S, (got, at)
    # One continuous AAC stream, packets a frame apart throughout, that lost what the picture lost.
    sound = packets(out, "a:0")
    assert {int(b["pts"]) - int(a["pts"]) for a, b in itertools.pairwise(sound)} == {1024}
    pcm, original = mono_pcm(out), mono_pcm(closed)
    removed_s = (len(gray(closed)) - len(expected)) / FPS
    assert len(pcm) / 48_000 == pytest.approx(len(original) / 48_000 - removed_s, abs=AUDIO_FRAME_S)
    # No gap at a join: the quiet tone never drops out for 10 ms.
    windows = pcm[: len(pcm) // 480 * 480].reshape(-1, 480)
    assert np.sqrt((windows[:-2] ** 2).mean(axis=1)).min() > 0.02


def outside(frame: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    keep = np.ones(frame.shape, dtype=bool)
    for x, y, w, h in boxes:
        keep[max(y - 4, 0) : y + h + 4, max(x - 4, 0) : x + w + 4] = False
    return frame[keep]


def test_smart_mask_reencodes_only_the_gops_a_region_shows_in(closed: Path, tmp_path: Path) -> None:
    black, blur = (40, 60, 80, 60), (180, 120, 100, 80)
    regions = [Region(*black, start=3.1, end=5.2, style="black"), Region(*blur, start=9.5, style="blur")]
    out = tmp_path / "masked.mp4"
    report = smart_mask(closed, out, probe(closed), regions)
    assert report.render == "smart"
    frames, reference = gray(out), gray(closed)
    assert indices(frames) == list(range(len(reference)))
    copied, reencoded = split_copied(closed, out, list(range(len(reference))))
    x, y, w, h = black
    for p in range(len(reference)):
        boxes = ([black] if 78 <= p <= 130 else []) + ([blur] if p >= 238 else [])
        if 78 <= p <= 130:
            assert frames[p][y : y + h, x : x + w].max() <= 16, p
        if p in reencoded:
            assert psnr(outside(frames[p], boxes), outside(reference[p], boxes)) >= 40, p
    touched = touched_gops(keyframe_positions(closed), [(78, 131), (238, 300)], len(reference))
    assert all(any(a <= p < b for a, b in touched) for p in reencoded)
    assert report.copied_s == pytest.approx(len(copied) / FPS) == pytest.approx(4.0)
    # Inside the blur region the pixels are what today's full render makes of them.
    today = tmp_path / "today.mp4"
    apply_mask(closed, today, probe(closed), regions)
    bx, by, bw, bh = blur
    full = gray(today)[250][by : by + bh, bx : bx + bw].astype(int)
    assert np.abs(frames[250][by : by + bh, bx : bx + bw].astype(int) - full).mean() < 2.0
    assert_decodes_like_the_source(closed, out)

    def audio_md5(path: Path) -> str:
        ffmpeg("-i", path, "-map", "0:a", "-c", "copy", "-f", "md5", tmp_path / "audio.md5")
        return (tmp_path / "audio.md5").read_text()

    assert audio_md5(out) == audio_md5(closed)


def _vp9(path: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3", "-c:v", "libvpx-vp9", "-deadline", "realtime",
           "-cpu-used", "8", "-b:v", "300k", path)  # fmt: skip


def _vfr(path: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3", "-vf", "select='not(between(n,20,24))'",
           "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", path)  # fmt: skip


def _trimmed(path: Path, closed: Path) -> None:
    # A stream copy starting between keyframes: an edit list hides the frames before 0.5 s.
    ffmpeg("-ss", "0.5", "-i", closed, "-c", "copy", "-t", "3", path)


@pytest.mark.parametrize(
    ("make", "operation", "max_gop_s", "reason"),
    [
        ("vp9", "cut", 10.0, "the video is vp9, not H.264 or HEVC"),
        ("vfr", "mask", 10.0, "the frame rate varies"),
        ("trimmed", "cut", 10.0, "hidden by an edit list"),
        ("closed", "mask", 1.0, "keyframes are up to 2.0 s apart, more than the 1 s"),
    ],
)
def test_sources_it_cannot_render_exactly_take_the_full_path_and_say_why(
    make: str, operation: str, max_gop_s: float, reason: str, closed: Path, tmp_path: Path
) -> None:
    src = {"closed": closed}.get(make) or tmp_path / f"{make}.{'webm' if make == 'vp9' else 'mp4'}"
    if make == "vp9":
        _vp9(src)
    elif make == "vfr":
        _vfr(src)
    elif make == "trimmed":
        _trimmed(src, closed)
    info = probe(src)
    out = tmp_path / "out.mp4"
    if operation == "cut":
        report = smart_cut(src, out, info, [(1.0, 1.5)], max_gop_s=max_gop_s)
        assert probe(out).duration == pytest.approx(info.duration - 0.5, abs=0.1)
    else:
        report = smart_mask(src, out, info, [Region(10, 40, 50, 50, start=1.0)], max_gop_s=max_gop_s)
        assert len(packets(out)) == len([p for p in packets(src) if "D" not in p["flags"]])
    assert report.render == "full" and report.reason is not None and reason in report.reason
    assert report.copied_s == 0.0 and report.reencoded_s > 0
    public = {"render": "full", "reencoded_s": round(report.reencoded_s, 3), "copied_s": 0.0}
    assert report.public() == {**public, "reason": report.reason}


@pytest.mark.parametrize(
    ("ranges", "field"),
    [
        ([], "ranges must list at least one range"),
        ([(0.0, 13.0)], "ranges remove the whole video"),
        ([(1.0, 2.0), (13.0, 14.0)], "ranges[1] starts at 13 s"),
        ([(-1.0, 2.0)], "ranges[0].start must not be negative"),
        ([(math.nan, 2.0)], "ranges[0] must have finite start and end"),
        ([(1.0, math.inf)], "ranges[0] must have finite start and end"),
        ([(1.01, 1.02)], "ranges fall between frames and remove nothing"),
    ],
)
def test_smart_cut_rejects_ranges_naming_the_field(
    ranges: list[tuple[float, float]], field: str, closed: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParams) as caught:
        smart_cut(closed, tmp_path / "out.mp4", probe(closed), ranges)
    assert field in str(caught.value) and caught.value.code == "invalid_params"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("region", "field"),
    [
        (Region(10, 10, 50, 50, start=math.nan), "regions[1] must have a finite start"),
        (Region(10, 10, 50, 50, start=1.0, end=math.inf), "regions[1] must have a finite start"),
        (Region(10, 10, 50, 50, start=-1.0), "regions[1].start must not be negative"),
        (Region(10, 10, 50, 50, start=13.0), "regions[1] starts at 13 s"),
        (Region(400, 10, 50, 50), "regions[1] lies entirely outside the 320x240 frame"),
    ],
)
def test_smart_mask_rejects_regions_naming_the_field(
    region: Region, field: str, closed: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRegion) as caught:
        smart_mask(closed, tmp_path / "out.mp4", probe(closed), [Region(0, 40, 10, 10), region])
    assert field in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_region_in_the_last_gop_copies_everything_before_it_as_one_span(
    closed: Path, tmp_path: Path
) -> None:
    seen: list[float] = []
    out = tmp_path / "masked.mp4"
    report = smart_mask(
        closed, out, probe(closed), [Region(40, 60, 80, 60, start=11.0)], on_progress=seen.append
    )
    assert report.copied_s == pytest.approx(10.0) and report.reencoded_s == pytest.approx(2.0)
    assert indices(gray(out)) == list(range(SECONDS * FPS))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(set(seen)) >= 3
    assert seen[0] < 0.3  # the copy pass is the cheap first step


def test_cancel_stops_every_ffmpeg_and_leaves_no_temp_files(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    long = cached_clip(tmp_path_factory, "long.mp4", long_clip)
    stop = CancelAtFirstProgress()
    with cancellable(stop.event), pytest.raises(JobCancelled):
        smart_cut(long, tmp_path / "cut.mp4", probe(long), [(3.0, 4.0), (21.0, 22.5)], on_progress=stop)
    assert stop.seconds_since() < 2.0
    assert running_ffmpeg(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def _synthetic() -> VideoIndex:
    """13 frames: a closed GOP of 5, then two open GOPs whose keyframes (6, 10) each lead one B-frame."""
    pts = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11)
    stream = VideoStream("h264", 320, 240, time_base=Fraction(1, 25), frame_rate=Fraction(25))
    return VideoIndex(stream=stream, start_s=0.0, pts=pts, keys=(0, 5, 9), end=13 / 25)


def test_plan_copies_leading_frames_only_together_with_the_gop_before() -> None:
    index = _synthetic()
    assert [(g.first, g.key, g.end) for g in index.gops] == [(0, 0, 5), (5, 6, 9), (9, 10, 13)]
    # A cut in the first GOP: the second GOP's leading frame 5 leans on it, so it is re-encoded too.
    every = {1, 2}  # keyframes a decoder can start afresh at (IDRs, or HEVC CRAs marked as BLAs)
    assert plan(index, starts=every, removed=[(2, 3)]) == [
        Span(False, 0, 2), Span(False, 3, 6), Span(True, 6, 13)
    ]  # fmt: skip
    # A change in the last GOP: its leading frame goes with it; everything before is one copy.
    assert plan(index, starts=every, changed=[(10, 11)]) == [Span(True, 0, 9), Span(False, 9, 13)]
    # H.264 open GOPs (recovery-point I-frames): no copy may follow a change, so the rest is re-encoded;
    # the copy before a change is untouched by that (it continues from the stream's start).
    assert plan(index, starts=(), removed=[(2, 3)]) == [Span(False, 0, 2), Span(False, 3, 13)]
    assert plan(index, starts=(), changed=[(10, 11)]) == [Span(True, 0, 9), Span(False, 9, 13)]
    assert plan(index, starts={2}, changed=[(3, 4)]) == [Span(False, 0, 10), Span(True, 10, 13)]
    bsf = copy_args(Path("src.mp4"), index, [Span(True, 6, 13)], Path("copy%04d.ts"), max_pixels=None)
    # Packets 5..12 are copied but for packet 6, frame 5, the leading B-frame of the copy's first keyframe.
    assert any("not(between(n,5,12))+eq(n,6)" in arg for arg in bsf)


def test_index_marks_open_gops_and_their_longest_gop(source: Path) -> None:
    index = read_index(source, probe(source))
    assert index.count == 300 and index.fps == FPS and index.longest_gop_s <= 2.2
    assert index.open == ("open" in source.name)
    assert [g.key for g in index.gops] == keyframe_positions(source)
