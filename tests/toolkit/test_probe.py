from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs import process
from mediajobs.errors import UnsupportedMedia
from mediajobs.toolkit.probe import probe
from tests.clips import MakeClip


def test_probe_reads_video_and_audio(make_clip: MakeClip) -> None:
    clip = make_clip(duration=2.0, width=320, height=240, fps=25)

    found = probe(clip)

    assert found.duration == pytest.approx(2.0, abs=0.1)
    assert (found.width, found.height, found.fps) == (320, 240, 25.0)
    assert (found.video_codec, found.audio_codec) == ("h264", "aac")
    assert found.has_video and found.has_audio
    assert found.size == clip.stat().st_size
    assert found.rotation == 0
    assert found.audio_channels == 1 and found.audio_sample_rate == 48000
    assert found.nb_frames == 50
    assert found.bit_rate and found.bit_rate > 0
    assert "mp4" in found.format_name


def test_probe_public_is_the_contract_shape(make_clip: MakeClip) -> None:
    found = probe(make_clip())

    assert set(found.public()) == {"duration", "width", "height", "fps", "video_codec", "audio_codec", "size"}


def test_probe_swaps_dimensions_of_rotated_video(make_clip: MakeClip) -> None:
    found = probe(make_clip(width=320, height=240, rotate=90))

    assert found.rotation in (90, 270)
    assert (found.width, found.height) == (240, 320)


def test_probe_audio_only_has_no_video(make_clip: MakeClip) -> None:
    found = probe(make_clip(video=False, duration=1.5))

    assert not found.has_video and found.has_audio
    assert found.width is None and found.fps is None
    assert found.duration == pytest.approx(1.5, abs=0.1)


def test_probe_ignores_cover_art(make_clip: MakeClip, tmp_path: Path) -> None:
    audio = make_clip(video=False)
    cover = tmp_path / "cover.png"
    red = ["-f", "lavfi", "-i", "color=red:size=64x64", "-frames:v", "1"]
    process.run(["ffmpeg", "-v", "error", *red, str(cover)])
    tagged = tmp_path / "tagged.m4a"
    args = [
        "ffmpeg",
        "-v",
        "error",
        "-i",
        str(audio),
        "-i",
        str(cover),
        "-map",
        "0",
        "-map",
        "1",
        "-c",
        "copy",
    ]
    process.run([*args, "-disposition:v:0", "attached_pic", str(tagged)])

    found = probe(tagged)

    assert found.has_audio and not found.has_video


def test_probe_rejects_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()

    with pytest.raises(UnsupportedMedia, match="the file is empty"):
        probe(empty)


def test_probe_rejects_text_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)

    with pytest.raises(UnsupportedMedia) as caught:
        probe(text)
    # In plain words (the upload route refuses text before this; an import's file is sniffed first too).
    assert str(caught.value).startswith("the file is "), caught.value
    for tools_words in (str(tmp_path), " @ 0x", "ffprobe", "moov", "Invalid data"):
        assert tools_words not in str(caught.value)
    assert caught.value.code == "unsupported_media"


def test_probe_rejects_truncated_file(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip(duration=2.0)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])

    with pytest.raises(UnsupportedMedia, match=r"^the file is incomplete") as caught:
        probe(truncated)
    assert "ffprobe" not in str(caught.value) and "moov" not in str(caught.value)


def test_probe_rejects_file_without_media_streams(tmp_path: Path) -> None:
    subtitles = tmp_path / "subs.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    only_subtitles = tmp_path / "subs.mkv"
    process.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(subtitles), str(only_subtitles)])

    with pytest.raises(UnsupportedMedia, match="the file holds no video or audio"):
        probe(only_subtitles)
