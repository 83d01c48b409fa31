"""Nothing of a source's metadata reaches a file the toolkit writes: every writer, from sources tagged in
every place MP4, QuickTime, Matroska and MPEG-TS have (tests/toolkit/tagged.py), read back with ffprobe and
byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs.toolkit import downloads, stills, storyboard
from mediajobs.toolkit.clip import Crop, render_clip
from mediajobs.toolkit.cut import remove_frames
from mediajobs.toolkit.hls.ladder import AUDIO
from mediajobs.toolkit.mask import Region, apply_mask
from mediajobs.toolkit.probe import probe
from mediajobs.toolkit.smart.render import smart_cut, smart_mask
from mediajobs.toolkit.sound import Range, Sound
from mediajobs.toolkit.thumbnail import make_thumbnail
from tests.toolkit.ladders import make_ladder
from tests.toolkit.tagged import CONTAINERS, MARKER, SIZE, leaks, tagged_source

SQUARE = Crop("1:1")


@pytest.fixture(scope="module", params=CONTAINERS)
def tagged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    container: str = request.param
    return tagged_source(tmp_path_factory.mktemp(f"tagged-{container}") / f"tagged.{container}", container)


def test_the_tagged_sources_carry_their_metadata_everywhere(tagged: Path) -> None:
    found = leaks(tagged)
    assert f"{MARKER!r} in its bytes" in found and f"{MARKER!r} in what ffprobe reads" in found
    if tagged.suffix != ".ts":
        assert {"format tag creation_time", "2 chapters", "a subtitle stream"} <= set(found), found


def test_no_output_of_the_toolkit_carries_the_sources_metadata(tagged: Path, tmp_path: Path) -> None:
    info = probe(tagged)
    made: list[Path] = []
    # The ladder: the source's own stream cut into segments (the MP3 of the Matroska file makes it encode).
    hls = make_ladder(tagged, tmp_path / "hls", info)
    assert (hls.ladder.fast_start is None) == (tagged.suffix != ".mkv"), hls.ladder.fast_start
    video = sorted((tmp_path / "hls" / hls.ladder.names[0]).glob("seg_*.ts"))
    audio = sorted((tmp_path / "hls" / AUDIO).glob("seg_*.ts"))
    made += video + audio + sorted((tmp_path / "hls").rglob("*.m3u8"))
    mp4, m4a = tmp_path / "download.mp4", tmp_path / "download.m4a"
    downloads.remux(video=video, audio=audio, mp4=mp4, m4a=m4a, probe=info, work_dir=tmp_path / "work")
    size = stills.sized(SIZE, 160, None)
    still = stills.frame_at(video[0], tmp_path / "still.jpg", 0.5, size, "jpg", info, segment_s=4.0)
    gif = tmp_path / "preview.gif"
    stills.animated(video, gif, start=0.0, end=1.0, width=160, fps=5, fmt="gif", source=SIZE, probe=info)
    layout = storyboard.plan(info.duration, *SIZE)
    sheets = storyboard.render(video, tmp_path / "storyboard", layout, info)
    thumbnail = make_thumbnail(tagged, tmp_path / "thumbnail.jpg", info)
    made += [mp4, m4a, still, gif, *sheets, thumbnail]
    # Derived files, smart (GOPs copied as they are, the SEI aside) and in full.
    region = [Region(10, 10, 80, 60, 1.2, 1.6, "black")]
    bleeped = Sound("keep", (Range(0.5, 1.0, "bleep"),))
    reports = {
        "smart-masked.mp4": smart_mask(tagged, tmp_path / "smart-masked.mp4", info, region),
        "bleeped.mp4": smart_mask(tagged, tmp_path / "bleeped.mp4", info, [], sound=bleeped),
        "smart-cut.mp4": smart_cut(tagged, tmp_path / "smart-cut.mp4", info, [(1.2, 1.6)]),
        "whole-clip.mp4": render_clip(tagged, tmp_path / "whole-clip.mp4", info, 0.0, info.duration),
        "clip.mp4": render_clip(tagged, tmp_path / "clip.mp4", info, 0.5, 2.5),
        "cropped-clip.mp4": render_clip(tagged, tmp_path / "cropped-clip.mp4", info, 0.5, 2.5, crop=SQUARE),
    }
    assert {name: r.render for name, r in reports.items()} == {
        "smart-masked.mp4": "smart",
        "bleeped.mp4": "smart",
        "smart-cut.mp4": "smart",
        "whole-clip.mp4": "smart",
        "clip.mp4": "smart",
        "cropped-clip.mp4": "full",
    }, {name: r.reason for name, r in reports.items()}
    made += [tmp_path / name for name in reports]
    made.append(apply_mask(tagged, tmp_path / "masked.mp4", info, region))
    made.append(remove_frames(tagged, tmp_path / "cut.mp4", info, [(1.2, 1.6)]))
    found = {str(path.relative_to(tmp_path)): leaks(path) for path in made}
    assert {name: what for name, what in found.items() if what} == {}
    assert len(made) > 15 and all(path.stat().st_size > 0 for path in made)
