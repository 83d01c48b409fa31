"""The toolkit's outputs of a ladder, without jobs: storyboard layout and tiles, stills and animations at a
time, remuxed downloads, and the time of the automatic thumbnail — each judged by the frame index the
pictures carry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mediajobs import process
from mediajobs.toolkit import downloads, stills, storyboard
from mediajobs.toolkit.probe import Probe, probe
from mediajobs.toolkit.thumbnail import pick_thumbnail
from tests.toolkit.frames import mono_pcm
from tests.toolkit.indexclips import counter_clip, frame_shown_at, gray, index_of
from tests.toolkit.ladders import Made, make_ladder


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Probe, Made, Path]:
    """A 5.5 s counter clip (keyframes every 2 s) and its HLS ladder (its own stream, cut at 0 and 4 s)."""
    directory = tmp_path_factory.mktemp("outputs-ladder")
    src = counter_clip(directory / "counter.mp4", seconds=5.5)
    info = probe(src)
    out = directory / "hls"
    return src, info, make_ladder(src, out, info), out


def segments(out: Path, name: str) -> list[Path]:
    return sorted((out / name).glob("seg_*.ts"))


@pytest.mark.parametrize(
    ("duration", "interval", "count", "sheets"),
    [
        (0.4, 1.0, 1, 1),
        (12.0, 1.0, 12, 1),
        (12.5, 1.0, 13, 1),
        (200.0, 1.0, 200, 2),
        (201.0, 2.0, 101, 2),
        (600.0, 3.0, 200, 2),
        (21600.0, 108.0, 200, 2),
    ],
)
def test_storyboard_layout_keeps_within_200_tiles_and_one_a_second_when_short(
    duration: float, interval: float, count: int, sheets: int
) -> None:
    layout = storyboard.plan(duration, 1920, 1080)
    assert (layout.interval_s, layout.count, layout.sheets) == (interval, count, sheets)
    assert (layout.tile_width, layout.tile_height) == (160, 90)
    assert layout.columns <= 10 and layout.rows <= 10
    assert storyboard.plan(duration, 1080, 1920).tile_height == 284  # portrait keeps its aspect too


def test_storyboard_vtt_cues_name_their_tiles() -> None:
    layout = storyboard.plan(150.0, 640, 360)
    text = storyboard.vtt(layout, 150.0)
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nsheet_000.jpg#xywh=0,0,160,90\n")
    assert "00:01:39.000 --> 00:01:40.000\nsheet_000.jpg#xywh=1440,810,160,90" in text
    assert "00:01:40.000 --> 00:01:41.000\nsheet_001.jpg#xywh=0,0,160,90" in text
    assert text.rstrip().endswith("00:02:29.000 --> 00:02:30.000\nsheet_001.jpg#xywh=1440,360,160,90")


def test_storyboard_tiles_show_the_frame_at_each_cue_start_to_the_end(
    ladder: tuple[Path, Probe, Made, Path], tmp_path: Path
) -> None:
    _, info, hls, out = ladder
    layout = storyboard.plan(info.duration, info.width or 0, info.height or 0)
    assert layout.count == 6  # 5.5 s: the last tile at 5 s
    [sheet] = storyboard.render(segments(out, hls.ladder.names[-1]), tmp_path, layout, info)
    picture = gray(sheet.read_bytes(), ".jpg")
    for k in range(layout.count):
        _, x, y, w, h = layout.tile(k)
        assert index_of(picture[y : y + h, x : x + w]) == frame_shown_at(k * layout.interval_s), k
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet_000.jpg"]  # nothing else left behind


@pytest.mark.parametrize("t", [0.0, 0.039, 0.04, 1.999, 2.0, 3.3, 5.46, 5.5])
def test_still_is_the_frame_shown_at_its_time(
    ladder: tuple[Path, Probe, Made, Path], t: float, tmp_path: Path
) -> None:
    _, info, hls, out = ladder
    files = segments(out, hls.ladder.names[0])
    starts = hls.ladder.grid.starts
    assert len(starts) > 1
    i = max(k for k, start in enumerate(starts) if start <= t)
    size = stills.sized((320, 240), 160, None)
    still = stills.frame_at(files[i], tmp_path / "still.png", t - starts[i], size, "png", info, segment_s=4.0)
    assert index_of(gray(still.read_bytes())) == min(frame_shown_at(t), 137)


def test_sizes_for_each_fit_mode() -> None:
    assert (stills.sized((1920, 1080), 640, None).width, stills.sized((1920, 1080), 640, None).height) == (
        640,
        360,
    )
    preserve = stills.sized((1920, 1080), 500, 500)
    assert (preserve.width, preserve.height) == (500, 281)
    crop = stills.sized((1920, 1080), 500, 500, "crop")
    assert (crop.width, crop.height) == (500, 500) and "crop=500:500" in crop.filters
    pad = stills.sized((1920, 1080), 500, 500, "pad")
    assert (pad.width, pad.height) == (500, 500) and "pad=500:500" in pad.filters
    tiny = stills.sized((1920, 1080), 1, None)
    assert (tiny.width, tiny.height) == (1, 1)


def test_remuxed_mp4_and_m4a_keep_every_frame_and_sample_in_sync(
    ladder: tuple[Path, Probe, Made, Path], tmp_path: Path
) -> None:
    src, info, hls, out = ladder
    mp4, m4a = tmp_path / "a.mp4", tmp_path / "a.m4a"
    downloads.remux(
        video=segments(out, hls.ladder.names[0]),
        audio=segments(out, "audio"),
        mp4=mp4,
        m4a=m4a,
        probe=info,
        work_dir=tmp_path / "work",
    )
    found = json.loads(
        process.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-of",
                "json",
                "-show_entries",
                "stream=codec_name,nb_frames",
                str(mp4),
            ],
            capture_stdout=True,
        ).stdout
        or "{}"
    )
    assert [s["codec_name"] for s in found["streams"]] == ["h264", "aac"]
    assert int(found["streams"][0]["nb_frames"]) == 138
    expected = mono_pcm(src)
    for path in (mp4, m4a):
        assert np.array_equal(mono_pcm(path), expected), path


def test_thumbnail_says_which_frame_it_shows(ladder: tuple[Path, Probe, Made, Path], tmp_path: Path) -> None:
    src, info, _, _ = ladder
    thumb, shown_s = pick_thumbnail(src, tmp_path / "t.jpg", info)
    assert shown_s is not None
    assert index_of(gray(thumb.read_bytes(), ".jpg")) == frame_shown_at(shown_s)
