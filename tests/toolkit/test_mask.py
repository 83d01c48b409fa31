from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mediajobs.errors import JobCancelled, PermanentError
from mediajobs.process import cancellable
from mediajobs.toolkit.mask import InvalidRegion, Region, apply_mask, build_mask_filter, clip_regions
from mediajobs.toolkit.probe import Probe, probe
from tests.toolkit.frames import ffmpeg, frame_at, running_ffmpeg
from tests.toolkit.opsclips import (
    CancelAtFirstProgress,
    cached_clip,
    long_clip,
    pattern_clip,
    watching_progress,
)

W, H = 320, 240


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "pattern.mp4", pattern_clip)


@pytest.fixture(scope="module")
def long(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "long.mp4", long_clip)


def masked(clip: Path, tmp_path: Path, *regions: Region) -> Path:
    return apply_mask(clip, tmp_path / "masked.mp4", probe(clip), regions)


def outside(frame: np.ndarray, *boxes: tuple[int, int, int, int]) -> np.ndarray:
    keep = np.ones(frame.shape[:2], dtype=bool)
    for x, y, w, h in boxes:
        keep[max(y - 4, 0) : y + h + 4, max(x - 4, 0) : x + w + 4] = False  # codec blur at the box edges
    return frame[keep]


def close(a: np.ndarray, b: np.ndarray) -> bool:
    diff = np.abs(a - b)
    return float(diff.mean()) < 2.0 and float(np.percentile(diff, 99)) < 16


def detail(pixels: np.ndarray) -> float:
    """Energy of sharp edges: blurring spreads a step over many pixels, which squares it away."""
    # Measured on 2x2 averages: decoding 4:2:0 to RGB leaves steps on the chroma grid that are no detail.
    h, w, c = pixels.shape
    pixels = pixels[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))
    return float((np.diff(pixels, axis=0) ** 2).mean() + (np.diff(pixels, axis=1) ** 2).mean())


def test_black_region_paints_only_inside_its_time_range(clip: Path, tmp_path: Path) -> None:
    box = (40, 40, 80, 60)
    out = masked(clip, tmp_path, Region(*box, start=1.0, end=2.0, style="black"))
    x, y, w, h = box
    for t in (0.5, 1.5, 3.0):
        src, got = frame_at(clip, t, W, H), frame_at(out, t, W, H)
        assert close(outside(got, box), outside(src, box))
        if t == 1.5:
            assert got[y : y + h, x : x + w].max() <= 16
        else:
            assert close(got[y : y + h, x : x + w], src[y : y + h, x : x + w])


def test_blur_leaves_no_readable_detail_in_its_region(clip: Path, tmp_path: Path) -> None:
    bars, digits = (20, 10, 200, 60), (240, 80, 60, 80)  # colour-bar edges; testsrc's running counter
    out = masked(clip, tmp_path, Region(*bars, style="blur"), Region(*digits, style="blur"))
    for t in (0.2, 2.6):
        src, got = frame_at(clip, t, W, H), frame_at(out, t, W, H)
        for x, y, w, h in (bars, digits):
            assert detail(got[y : y + h, x : x + w]) < 0.05 * detail(src[y : y + h, x : x + w])
        assert close(outside(got, bars, digits), outside(src, bars, digits))


def test_pixelate_turns_region_into_flat_blocks(clip: Path, tmp_path: Path) -> None:
    box = (16, 16, 96, 96)  # 96 px on the short side: 16 px blocks
    out = masked(clip, tmp_path, Region(*box, style="pixelate"))
    got = frame_at(out, 1.0, W, H)
    blocks = got[16:112, 16:112].reshape(6, 16, 6, 16, 3).swapaxes(1, 2)
    assert float(blocks.std(axis=(2, 3)).mean()) < 3.0
    assert float(blocks.mean(axis=(2, 3)).std()) > 20  # still the picture's colours, not one flat box


def test_overlapping_regions_are_masked_in_one_pass_with_black_on_top(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    regions = [
        Region(100, 60, 120, 120, start=0.0, end=None, style="blur"),
        Region(40, 40, 100, 100, start=1.0, end=3.0, style="black"),
        Region(150, 100, 60, 60, start=2.0, end=None, style="pixelate"),
    ]
    with watching_progress(monkeypatch, expected_s=4.0) as log:
        out = masked(clip, tmp_path, *regions)
    assert [kind for kind, _, _ in log.events].count("end") == 1  # one ffmpeg run
    assert build_mask_filter(regions, W, H).count("[0:v:0]") == 1  # one decode
    got = frame_at(out, 2.5, W, H)
    assert got[40:140, 40:140].max() <= 16  # black wins over the blur it overlaps
    assert detail(got[150:180, 150:220]) < detail(frame_at(clip, 2.5, W, H)[150:180, 150:220])


def test_output_keeps_size_rate_duration_and_copies_audio(clip: Path, tmp_path: Path) -> None:
    out = masked(clip, tmp_path, Region(10, 10, 50, 50, style="blur"))
    before, after = probe(clip), probe(out)
    assert (after.width, after.height, after.fps) == (before.width, before.height, before.fps)
    assert after.duration == pytest.approx(before.duration, abs=1 / 25)
    assert after.audio_codec == before.audio_codec

    def audio_hash(path: Path) -> str:
        ffmpeg("-i", path, "-map", "0:a", "-c", "copy", "-f", "md5", tmp_path / "audio.md5")
        return (tmp_path / "audio.md5").read_text()

    assert audio_hash(out) == audio_hash(clip)


def test_odd_tiny_and_edge_regions_are_accepted_by_ffmpeg(clip: Path, tmp_path: Path) -> None:
    regions = [
        Region(1, 1, 1, 1, style="blur"),
        Region(5, 7, 3, 51, style="blur"),
        Region(301, 221, 99, 99, style="pixelate"),  # hangs off the bottom-right corner
        Region(310, 101, 33, 3, style="black"),  # off the right edge, over testsrc's white border
    ]
    out = masked(clip, tmp_path, *regions)
    got = frame_at(out, 1.0, W, H)
    assert got[101:104, 310:320].max() <= 16
    assert probe(out).nb_frames == probe(clip).nb_frames


def test_clip_regions_trims_regions_to_the_frame() -> None:
    clipped = clip_regions([Region(-10, 200, 50, 100, start=1.0, end=None, style="black")], W, H, 4.0)
    assert clipped == [Region(0, 200, 40, 40, start=1.0, end=None, style="black")]


@pytest.mark.parametrize(
    ("region", "message"),
    [
        (Region(400, 10, 50, 50), "regions[1] lies entirely outside the 320x240 frame"),
        (Region(-60, 10, 50, 50), "regions[1] lies entirely outside the 320x240 frame"),
        (Region(10, 10, 0, 50), "regions[1] has a non-positive size 0x50"),
        (Region(10, 10, 50, -5), "regions[1] has a non-positive size 50x-5"),
        (Region(10, 10, 50, 50, start=2.0, end=2.0), "regions[1].end (2) must be after its start (2)"),
        (Region(10, 10, 50, 50, start=5.0), "regions[1] starts at 5 s, after the 4 s video ends"),
        (Region(10, 10, 50, 50, style="smudge"), "regions[1].style must be one of blur, black, pixelate"),
    ],
)
def test_clip_regions_rejects_regions_that_mask_nothing(region: Region, message: str) -> None:
    with pytest.raises(InvalidRegion) as caught:
        clip_regions([Region(0, 0, 10, 10), region], W, H, 4.0)
    assert isinstance(caught.value, PermanentError) and caught.value.code == "invalid_params"
    assert message in str(caught.value)


def test_progress_follows_ffmpeg_against_the_source_duration(
    long: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info: Probe = probe(long)
    with watching_progress(monkeypatch, expected_s=info.duration) as log:
        apply_mask(long, tmp_path / "out.mp4", info, [Region(40, 40, 200, 100)], on_progress=log.fraction)
    log.assert_faithful()


def test_cancel_stops_ffmpeg_within_two_seconds(long: Path, tmp_path: Path) -> None:
    stop = CancelAtFirstProgress()
    dst = tmp_path / "cancelled.mp4"
    with cancellable(stop.event), pytest.raises(JobCancelled):
        apply_mask(long, dst, probe(long), [Region(40, 40, 200, 100)], on_progress=stop)
    assert stop.seconds_since() < 2.0
    assert running_ffmpeg(dst) == []
