"""Files from strangers: playlists and scripts are refused unread, forged or oversized sources at probe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mediajobs.errors import ProcessFailed, TooLarge, UnsupportedMedia
from mediajobs.toolkit import packets
from mediajobs.toolkit.analyze import analyze
from mediajobs.toolkit.cut import remove_frames
from mediajobs.toolkit.hls import ladder, renditions
from mediajobs.toolkit.mask import Region, apply_mask
from mediajobs.toolkit.probe import Probe, probe
from mediajobs.toolkit.smart.render import smart_cut, smart_mask
from mediajobs.toolkit.thumbnail import make_thumbnail
from tests.clips import MakeClip
from tests.toolkit.hostile import (
    claiming_mkv,
    colour_clip,
    covered_song,
    ffconcat,
    gap_clip,
    growing_clip,
    hls_playlist,
    listener,
    trap,
    ts_clip,
)
from tests.toolkit.ladders import make_ladder


@pytest.mark.parametrize("name", ["evil.m3u8", "evil.mp4"])
def test_probe_refuses_hls_playlist_without_opening_its_segment(tmp_path: Path, name: str) -> None:
    with trap(tmp_path / "secret.ts", ts_clip(tmp_path / "real.ts").read_bytes()) as secret:
        playlist = tmp_path / name
        playlist.write_text(hls_playlist(str(secret.path)))

        with pytest.raises(UnsupportedMedia, match="HLS playlists cannot be uploaded; upload the video"):
            probe(playlist)

        assert not secret.opened.is_set(), "ffprobe opened the local file the playlist lists"


def test_probe_refuses_ffconcat_script_without_opening_the_file_it_lists(tmp_path: Path) -> None:
    with trap(tmp_path / "secret.ts") as secret:
        script = tmp_path / "notes.mp4"
        script.write_text(ffconcat("secret.ts"))  # relative: the concat demuxer's safe mode allows it

        with pytest.raises(UnsupportedMedia, match="concat scripts are not media"):
            probe(script)

        assert not secret.opened.is_set()


def test_probe_never_fetches_the_urls_a_playlist_lists(tmp_path: Path) -> None:
    with listener() as internal:
        playlist = tmp_path / "clip.mp4"
        playlist.write_text(hls_playlist(internal.url("latest/meta-data/seg.ts")))

        with pytest.raises(UnsupportedMedia, match="HLS playlists"):
            probe(playlist)

        assert internal.hits() == 0


def _hls(src: Path, out: Path, info: Probe) -> Any:
    return make_ladder(src, out / "hls", info)


def _thumbnail(src: Path, out: Path, info: Probe) -> Any:
    return make_thumbnail(src, out / "thumb.jpg", info)


def _mask(src: Path, out: Path, info: Probe) -> Any:
    return apply_mask(src, out / "masked.mp4", info, [Region(x=0, y=0, w=16, h=16)])


def _cut(src: Path, out: Path, info: Probe) -> Any:
    return remove_frames(src, out / "cut.mp4", info, [(0.5, 1.0)])


def _analyze(src: Path, out: Path, info: Probe) -> Any:
    return analyze(src, info)


@pytest.mark.parametrize("step", [_hls, _thumbnail, _mask, _cut, _analyze], ids=lambda f: f.__name__[1:])
def test_every_ffmpeg_step_refuses_a_playlist_without_opening_its_segment(
    make_clip: MakeClip, tmp_path: Path, step: Callable[[Path, Path, Probe], Any]
) -> None:
    # As if a playlist had slipped past probe: what each step was told describes a real clip.
    info = probe(make_clip(duration=2.0, width=160, height=120))
    with trap(tmp_path / "secret.ts", ts_clip(tmp_path / "real.ts").read_bytes()) as secret:
        playlist = tmp_path / "evil.mp4"
        playlist.write_text(hls_playlist(str(secret.path)))

        with pytest.raises(ProcessFailed, match="not on whitelist"):
            step(playlist, tmp_path, info)

        assert not secret.opened.is_set()


def test_probe_refuses_a_tiny_file_claiming_a_long_duration(tmp_path: Path) -> None:
    # Seen in the wild: 1.3 KB of mkv claiming 100,001 s made 24,042 segments.
    bomb = gap_clip(tmp_path / "bomb.mkv", gap_s=100_000)
    three_hours = gap_clip(tmp_path / "three-hours.mkv", gap_s=3 * 3600)

    for forged in (bomb, three_hours):
        with pytest.raises(
            UnsupportedMedia, match=r"holds only \d+ bytes: its timestamps are broken or forged"
        ):
            probe(forged, max_duration_s=21600)


def test_probe_refuses_a_source_longer_than_the_limit_as_too_large(tmp_path: Path) -> None:
    # The frames are real (a plausible size for the claim); only the length is over the limit.
    long = claiming_mkv(tmp_path / "long.mkv", claimed_s=7 * 3600, real_s=30, size="320x240")

    with pytest.raises(TooLarge, match=r"lasts 7:00:00, longer than the 6:00:00 allowed"):
        probe(long, max_duration_s=6 * 3600)
    assert probe(long).duration == pytest.approx(7 * 3600)


def test_probe_refuses_more_pixels_than_the_limit_as_too_large(tmp_path: Path) -> None:
    huge = colour_clip(tmp_path / "huge.mp4", size="4112x2320")

    with pytest.raises(TooLarge, match=r"4112x2320, more than the 9437184 pixels per frame"):
        probe(huge, max_pixels=4096 * 2304)
    assert probe(colour_clip(tmp_path / "uhd.mp4", size="4096x2304"), max_pixels=4096 * 2304).width == 4096


def test_probe_refuses_an_implausible_frame_rate(make_clip: MakeClip) -> None:
    clip = make_clip(duration=0.5, width=64, height=64, fps=1000)

    with pytest.raises(UnsupportedMedia, match="claims 1000 frames per second"):
        probe(clip)


def test_probe_accepts_the_smallest_real_files(make_clip: MakeClip, tmp_path: Path) -> None:
    still = tmp_path / "still.mp4"
    gap_clip(still, gap_s=1, frames=60, size="64x64")  # 60 s of one black-ish picture at 1 fps
    silent_audio = make_clip(duration=30.0, video=False)

    assert probe(still, max_duration_s=21600).duration == pytest.approx(60, abs=1)
    assert probe(silent_audio, max_duration_s=21600).has_audio
    assert probe(make_clip(duration=0.2, width=64, height=64)).has_video


def test_hls_encode_does_not_fill_a_timestamp_gap_with_copies(tmp_path: Path) -> None:
    src = gap_clip(tmp_path / "gap.mkv", gap_s=120)  # two frames two minutes apart, plausible enough

    make_ladder(src, tmp_path / "hls", probe(src))

    segments = sorted((tmp_path / "hls").glob("*/seg_*.ts"))
    # Constant frame rate would make 30 segments of copies of the first frame.
    assert 1 <= len(segments) <= 2, [s.name for s in segments]


def test_hls_encode_stops_near_the_duration_the_header_claims(tmp_path: Path) -> None:
    src = claiming_mkv(tmp_path / "short.mkv", claimed_s=2, real_s=20)
    info = probe(src)
    assert info.duration == pytest.approx(2)

    make_ladder(src, tmp_path / "hls", info)

    playlist = next((tmp_path / "hls").glob("*/index.m3u8")).read_text()
    made = sum(float(line[8:].split(",")[0]) for line in playlist.splitlines() if line.startswith("#EXTINF:"))
    assert made < 5, f"{made} s of stream from a source probed as 2 s"


def _ladder(src: Path, out: Path, info: Probe) -> Any:
    """What media.process does: the source's own stream copied when it is standard, the rest encoded."""
    index = (
        packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels) if info.has_video else None
    )
    lad = ladder.plan(info, index)
    if lad.fast_start is None:
        renditions.remux(src, out / "hls", lad, info)
        problem = renditions.copy_is_exact(out / "hls", lad)
        if problem is not None:
            lad = ladder.plan_encoded(info, index, problem)
    if lad.audio == "encode":
        renditions.encode_audio(src, out / "hls", lad, info)
    if lad.encoded:
        renditions.encode(src, out / "hls", lad, info)
    else:
        renditions.verify(src, lad, info)
    return lad


def _smart_cut(src: Path, out: Path, info: Probe) -> Any:
    return smart_cut(src, out / "cut.mp4", info, [(0.5, 1.0)])


def _smart_mask(src: Path, out: Path, info: Probe) -> Any:
    return smart_mask(src, out / "masked.mp4", info, [Region(x=0, y=0, w=16, h=16, start=0.5, end=1.0)])


SMALL_LIMIT = 4 * 64 * 64


@pytest.mark.parametrize(
    "step",
    [_ladder, _thumbnail, _mask, _cut, _analyze, _smart_cut, _smart_mask],
    ids=lambda f: f.__name__[1:],
)
def test_every_decode_refuses_a_frame_that_grows_past_max_pixels_as_too_large(
    tmp_path: Path, step: Callable[[Path, Path, Probe], Any]
) -> None:
    # Issue 17 item 2, scaled down: probes as 64x64 for 2 s, then 25 frames over the limit.
    src = growing_clip(tmp_path / "growing.ts", large="640x360", frames=25)
    info = probe(src, max_pixels=SMALL_LIMIT)
    assert (info.width, info.height) == (64, 64)
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(TooLarge) as refused:
        step(src, out, info)

    assert refused.value.code == "too_large"
    assert f"640x360, more than the {SMALL_LIMIT} pixels per frame allowed (MEDIAJOBS_MAX_PIXELS)" in str(
        refused.value
    )
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "a smart render left its pieces"


def test_a_cover_picture_larger_than_max_pixels_leaves_the_song_playable(tmp_path: Path) -> None:
    # ffmpeg decodes a cover picture whenever it opens the file; it is not video and the limit is not its.
    song = covered_song(tmp_path / "song.mp3", cover="300x300")
    info = probe(song, max_pixels=SMALL_LIMIT // 4)
    assert info.has_audio and not info.has_video
    out = tmp_path / "out"
    out.mkdir()

    lad = _ladder(song, out, info)

    assert lad.audio == "encode" and (out / "hls" / "audio").is_dir()


def test_a_stream_whose_picture_size_changes_is_not_copied_for_fast_start(tmp_path: Path) -> None:
    # Within the limit, but a copy would hand players a stream whose size changes under the master's
    # RESOLUTION; only an encode (which decodes, and so checks, every frame) may publish it.
    src = growing_clip(tmp_path / "growing.ts", large="320x240", frames=25)
    info = probe(src, max_pixels=SMALL_LIMIT * 100)
    lad = ladder.plan(info, packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels))
    assert lad.fast_start is None  # it looks standard...

    renditions.remux(src, tmp_path / "hls", lad, info)
    problem = renditions.copy_is_exact(tmp_path / "hls", lad)

    assert problem == "the picture changes mid-stream (320x240 besides 64x64)"  # ...but is not
