from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mediajobs import process
from mediajobs.errors import PermanentError, UnsupportedMedia
from mediajobs.toolkit.probe import probe
from mediajobs.toolkit.thumbnail import ThumbnailFailed, make_thumbnail
from tests.clips import MakeClip


def image_size(path: Path) -> tuple[int, int]:
    args = ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)]
    stream = json.loads(process.run(args, capture_stdout=True).stdout)["streams"][0]
    assert stream["codec_name"] == "mjpeg"
    return stream["width"], stream["height"]


def mean_luma(path: Path) -> float:
    # process.run reads stdout as text lines, so the raw pixels go through a file.
    raw = path.with_suffix(".gray")
    process.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", str(raw)]
    )
    return float(np.frombuffer(raw.read_bytes(), dtype=np.uint8).mean())


def test_thumbnail_skips_black_intro(make_clip: MakeClip, tmp_path: Path) -> None:
    # Three black seconds of four: a seek plus the `thumbnail` filter alone would still pick a black frame.
    clip = make_clip(duration=4.0, width=320, height=240, black_s=3.0)

    thumb = make_thumbnail(clip, tmp_path / "thumb.jpg", probe(clip))

    assert thumb == tmp_path / "thumb.jpg"
    assert mean_luma(thumb) > 40


def test_thumbnail_is_scaled_down_to_width_keeping_aspect(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip(width=640, height=360)

    thumb = make_thumbnail(clip, tmp_path / "thumbs" / "t.jpg", probe(clip), width=320)

    assert image_size(thumb) == (320, 180)


def test_thumbnail_never_upscales(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip(width=320, height=240)

    assert image_size(make_thumbnail(clip, tmp_path / "t.jpg", probe(clip))) == (320, 240)


def test_thumbnail_follows_rotation(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip(width=320, height=240, rotate=90)

    assert image_size(make_thumbnail(clip, tmp_path / "t.jpg", probe(clip))) == (240, 320)


def test_thumbnail_of_all_black_video_is_still_made(tmp_path: Path) -> None:
    clip = tmp_path / "black.mp4"
    args = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=black:size=160x120:duration=2"]
    process.run([*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)])

    thumb = make_thumbnail(clip, tmp_path / "t.jpg", probe(clip))

    assert image_size(thumb) == (160, 120)
    assert mean_luma(thumb) < 30


def test_thumbnail_of_audio_only_is_a_permanent_error(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip(video=False)

    with pytest.raises(UnsupportedMedia):
        make_thumbnail(clip, tmp_path / "t.jpg", probe(clip))


def test_thumbnail_of_unreadable_file_is_a_permanent_error(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip()
    found = probe(clip)
    clip.write_bytes(b"not a video any more")

    with pytest.raises(ThumbnailFailed) as caught:
        make_thumbnail(clip, tmp_path / "t.jpg", found)
    assert isinstance(caught.value, PermanentError)
    assert not (tmp_path / "t.jpg").exists()
