"""Smart renders show exactly the source frames they should, in order, on every GOP structure.

Each source numbers its frames (tests.toolkit.numbered). The H.264 open-GOP source is the one of issue 17
item 11: x264 open GOPs with a B-pyramid, 2 s GOPs at 30 fps, cut at [10.5, 12.2) and [31.0, 32.5); at
640x360 its smart cut decoded to 1,689 frames for 1,704, out of order around output frame 923, with "non
monotonically increasing dts" (its mask: "mmco: unref short failure"). A smart render must be exact or take
the full path and say why; here all four are exact and smart. The other three sources are shorter, with
the same pattern of changes earlier: each change straddles a GOP boundary, whole GOPs lie between the two
and after the last.
"""

from __future__ import annotations

import math
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
Ranges = list[tuple[float, float]]
# The issue's cuts. Its source ran 60 s; the first 36 s are the same frames, GOPs and pyramids, up to and past
# where it failed (the second cut), and one whole GOP after the last change (34-36 s).
ISSUE: tuple[float, Ranges] = (36, [(10.5, 12.2), (31.0, 32.5)])
# The same shape on 18 s: changes in 4-8 s and 12-16 s, GOPs to copy before, between and after them.
SHORT: tuple[float, Ranges] = (18, [(4.5, 6.2), (13.0, 14.5)])
# name: (codec options, size, (seconds, ranges))
SOURCES = {
    # The issue's x264 options and size, exactly.
    "h264-open-pyramid": ([*X264, f"keyint=60:min-keyint=60:open-gop=1:{PYRAMID}=normal"], (640, 360), ISSUE),
    "h264-closed-pyramid": ([*X264, f"{GOP}:{PYRAMID}=normal"], (320, 180), SHORT),
    # x265 makes open GOPs (CRA keyframes with leading RASL pictures) and B-pyramids by default.
    "hevc-open": ([*X265, f"{GOP}:log-level=error"], (320, 180), SHORT),
    "hevc-closed-pyramid": ([*X265, f"{GOP}:open-gop=0:{PYRAMID}=1:log-level=error"], (320, 180), SHORT),
}
# Whether copies may begin after a change: x264's open GOPs start at recovery-point I-frames, not IDRs, so
# everything after the first change is re-encoded; x265's CRAs are marked as BLAs where a copy begins.
COPIES_AFTER_A_CHANGE = {
    "h264-open-pyramid": False,
    "h264-closed-pyramid": True,
    "hevc-open": True,
    "hevc-closed-pyramid": True,
}


def ranges_of(src: Path) -> Ranges:
    return SOURCES[src.stem.removeprefix("numbered-")][2][1]


def removed(ranges: Ranges) -> list[tuple[int, int]]:
    """The frames whose times fall in `ranges` (the issue's: [315, 366) and [930, 975))."""
    return [(math.ceil(round(a * FPS, 6)), math.ceil(round(b * FPS, 6))) for a, b in ranges]


def regions(ranges: Ranges) -> list[Region]:
    """A black and a blurred region while the ranges show, away from the numbered boxes in the top-left."""
    (a, b), (c, d) = ranges
    return [
        Region(200, 100, 80, 60, start=a, end=b, style="black"),
        Region(150, 40, 100, 80, start=c, end=d, style="blur"),
    ]


def copied_after_a_change(src: Path, copied_s: float) -> bool:
    """Whether more was copied than the GOPs before the first change (2 s GOPs)."""
    first = ranges_of(src)[0][0]
    return copied_s > 2 * math.floor(first / 2) + 2  # the issue's: 12 s


def source(factory: pytest.TempPathFactory, name: str) -> Path:
    video, size, (seconds, _) = SOURCES[name]

    def make(path: Path) -> None:
        numbered_clip(path, video=video, size=size, fps=FPS, seconds=seconds)

    return cached_clip(factory, f"numbered-{name}.mp4", make)


@pytest.fixture(scope="module", params=list(SOURCES))
def numbered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return source(tmp_path_factory, str(request.param))


def test_smart_cut_shows_exactly_the_kept_frames_in_order(numbered: Path, tmp_path: Path) -> None:
    info = probe(numbered)
    out = tmp_path / "cut.mp4"

    report = smart_cut(numbered, out, info, ranges_of(numbered))

    assert_shows_exactly(out, kept(round(info.duration * FPS), removed(ranges_of(numbered))))
    assert report.render == "smart", report
    # Only the GOPs before the first change are copied when no copy may follow a change.
    expected = COPIES_AFTER_A_CHANGE[numbered.stem.removeprefix("numbered-")]
    assert copied_after_a_change(numbered, report.copied_s) == expected, report


def test_smart_mask_shows_every_frame_once_in_order(numbered: Path, tmp_path: Path) -> None:
    info = probe(numbered)
    out = tmp_path / "masked.mp4"

    report = smart_mask(numbered, out, info, regions(ranges_of(numbered)))

    assert_shows_exactly(out, range(round(info.duration * FPS)))
    assert report.render == "smart", report
    expected = COPIES_AFTER_A_CHANGE[numbered.stem.removeprefix("numbered-")]
    assert copied_after_a_change(numbered, report.copied_s) == expected, report


def test_a_smart_cut_of_a_standard_source_still_plays_from_a_copy(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # Re-encoded parts carry x264's own SPS beside the source's: other bytes, the same pictures. The derived
    # asset's stream must still be copied for fast start (README: it plays seconds after the operation).
    src = source(tmp_path_factory, "h264-closed-pyramid")
    out = tmp_path / "cut.mp4"
    assert smart_cut(src, out, probe(src), ranges_of(src)).render == "smart"
    info = probe(out, max_pixels=4096 * 2304)
    lad = ladder.plan(info, packets.scan(out, duration_s=info.duration, max_pixels=info.max_pixels))
    assert lad.fast_start is None

    renditions.remux(out, tmp_path / "hls", lad, info)

    assert renditions.copy_is_exact(tmp_path / "hls", lad) is None
