"""Smart renders show exactly the source frames they should, in order, on every GOP structure.

Each source numbers its frames (tests.toolkit.numbered). The H.264 open-GOP source is the one of issue 17
item 11: x264 open GOPs with a B-pyramid, 2 s GOPs at 30 fps, cut at [10.5, 12.2) and [31.0, 32.5); at
640x360 its smart cut decoded to 1,689 frames for 1,704, out of order around output frame 923, with "non
monotonically increasing dts" (its mask: "mmco: unref short failure"). A smart render must be exact or take
the full path and say why; here all four are exact and smart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs.toolkit import packets
from mediajobs.toolkit.hls import ladder, renditions
from mediajobs.toolkit.mask import Region
from mediajobs.toolkit.probe import probe
from mediajobs.toolkit.smart.render import smart_cut, smart_mask
from tests.toolkit.numbered import assert_shows_exactly, kept, numbered_clip
from tests.toolkit.opsclips import cached_clip

FPS = 30
GOP = f"keyint={2 * FPS}:min-keyint={2 * FPS}:scenecut=0"
PYRAMID = "bframes=3:b-pyramid"
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-x264-params"]
X265 = ["-c:v", "libx265", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-x265-params"]
# Every source ends 36 s in: one whole GOP after the last change (34-36 s). The source ran 60 s; its
# first 36 s are the same frames, GOPs and pyramids, up to and past where it failed (the second cut).
SECONDS = 36
# name: (codec options, size)
SOURCES = {
    # The x264 options and size, exactly.
    "h264-open-pyramid": ([*X264, f"keyint=60:min-keyint=60:open-gop=1:{PYRAMID}=normal"], (640, 360)),
    "h264-closed-pyramid": ([*X264, f"{GOP}:{PYRAMID}=normal"], (320, 180)),
    # x265 makes open GOPs (CRA keyframes with leading RASL pictures) and B-pyramids by default.
    "hevc-open": ([*X265, f"{GOP}:log-level=error"], (320, 180)),
    "hevc-closed-pyramid": ([*X265, f"{GOP}:open-gop=0:{PYRAMID}=1:log-level=error"], (320, 180)),
}
# Whether copies may begin after a change: x264's open GOPs start at recovery-point I-frames, not IDRs, so
# everything after the first change is re-encoded; x265's CRAs are marked as BLAs where a copy begins.
COPIES_AFTER_A_CHANGE = {
    "h264-open-pyramid": False,
    "h264-closed-pyramid": True,
    "hevc-open": True,
    "hevc-closed-pyramid": True,
}
RANGES = [(10.5, 12.2), (31.0, 32.5)]
REMOVED = [(315, 366), (930, 975)]  # the frames whose times fall in RANGES
# Away from the numbered boxes in the top-left corner.
REGIONS = [
    Region(200, 100, 80, 60, start=10.5, end=12.2, style="black"),
    Region(150, 40, 100, 80, start=31.0, end=32.5, style="blur"),
]


def source(factory: pytest.TempPathFactory, name: str) -> Path:
    video, size = SOURCES[name]

    def make(path: Path) -> None:
        numbered_clip(path, video=video, size=size, fps=FPS, seconds=SECONDS)

    return cached_clip(factory, f"numbered-{name}.mp4", make)


@pytest.fixture(scope="module", params=list(SOURCES))
def numbered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return source(tmp_path_factory, str(request.param))


def test_smart_cut_shows_exactly_the_kept_frames_in_order(numbered: Path, tmp_path: Path) -> None:
    info = probe(numbered)
    out = tmp_path / "cut.mp4"

    report = smart_cut(numbered, out, info, RANGES)

    assert_shows_exactly(out, kept(round(info.duration * FPS), REMOVED))
    assert report.render == "smart", report
    # The first change is at 10.5 s: only the GOPs before it are copied when no copy may follow a change.
    assert (report.copied_s > 12.0) == COPIES_AFTER_A_CHANGE[numbered.stem.removeprefix("numbered-")], report


def test_smart_mask_shows_every_frame_once_in_order(numbered: Path, tmp_path: Path) -> None:
    info = probe(numbered)
    out = tmp_path / "masked.mp4"

    report = smart_mask(numbered, out, info, REGIONS)

    assert_shows_exactly(out, range(round(info.duration * FPS)))
    assert report.render == "smart", report
    assert (report.copied_s > 12.0) == COPIES_AFTER_A_CHANGE[numbered.stem.removeprefix("numbered-")], report


def test_a_smart_cut_of_a_standard_source_still_plays_from_a_copy(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # Re-encoded parts carry x264's own SPS beside the source's: other bytes, the same pictures. The derived
    # asset's stream must still be copied for fast start (README: it plays seconds after the operation).
    src = source(tmp_path_factory, "h264-closed-pyramid")
    out = tmp_path / "cut.mp4"
    assert smart_cut(src, out, probe(src), RANGES).render == "smart"
    info = probe(out, max_pixels=4096 * 2304)
    lad = ladder.plan(info, packets.scan(out, duration_s=info.duration, max_pixels=info.max_pixels))
    assert lad.fast_start is None

    renditions.remux(out, tmp_path / "hls", lad, info)

    assert renditions.copy_is_exact(tmp_path / "hls", lad) is None
