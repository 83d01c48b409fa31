"""Clips: exactly the frames of [start, end) in order, the sound under them; crops keep the right region."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mediajobs.toolkit.clip import Crop, InvalidClip, crop_filter, render_clip, window
from mediajobs.toolkit.probe import Probe, probe
from tests.toolkit.frames import ffmpeg, gray_frames, mono_pcm, tone_onsets
from tests.toolkit.opsclips import cached_clip
from tests.toolkit.smartclips import (
    AUDIO_FRAME_S,
    BEEPS,
    FPS,
    H,
    W,
    decode_errors,
    framemd5,
    gray,
    indices,
    marked_clip,
)

COLUMN = 40  # the column source: 16 columns of 40 px, each a flat grey of its own


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "smart-h264-closed.mp4", lambda p: marked_clip(p))


def column_clip(path: Path, width: int, height: int) -> None:
    """Flat grey columns COLUMN px wide, column k at level 8 + 15k, for 2 s (with a tone)."""
    video = f"color=c=black:s={width}x{height}:r={FPS}:d=2,format=gray,geq=lum='8+15*floor(X/{COLUMN})'"
    sound = "sine=frequency=440:sample_rate=48000:duration=2"
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    ffmpeg("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", sound, *codecs, "-t", "2", path)


def column_levels(path: Path, width: int, height: int) -> list[int]:
    """Each pixel column's grey level in the middle row of the first frame."""
    return [int(v) for v in gray_frames(path, width, height)[0, height // 2]]


def test_a_clip_holds_exactly_the_frames_of_its_range_and_the_sound_under_them(
    marked: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clip.mp4"
    report = render_clip(marked, out, probe(marked), 3.1, 7.3)
    # 3.1 s and 7.3 s fall between frames: the clip runs from frame 78 (3.12 s) up to frame 183 (7.32 s).
    assert indices(gray(out)) == list(range(78, 183))
    assert report.render == "smart" and report.copied_s >= 2.0 and report.reencoded_s > 0
    assert decode_errors(out) == ""
    # The beep on frame 113 is heard 35 frames in; the others (frames 10, 198, 250) are cut away.
    heard = tone_onsets(mono_pcm(out))
    assert len(heard) == 1 and abs(heard[0] - (113 - 78) / FPS) <= AUDIO_FRAME_S, heard
    assert len(mono_pcm(out)) / 48_000 == pytest.approx((183 - 78) / FPS, abs=AUDIO_FRAME_S)
    assert BEEPS[1] == 113


def test_a_clip_on_keyframes_copies_every_frame_as_it_is(marked: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    report = render_clip(marked, out, probe(marked), 4.0, 8.0)
    assert indices(gray(out)) == list(range(100, 200))
    assert (report.render, report.reencoded_s, report.copied_s) == ("smart", 0.0, 4.0)
    assert framemd5(out) == framemd5(marked)[100:200]


def test_a_clip_to_the_end_or_of_everything(marked: Path, tmp_path: Path) -> None:
    info = probe(marked)
    tail = tmp_path / "tail.mp4"
    render_clip(marked, tail, info, 11.0, info.duration)
    assert indices(gray(tail)) == list(range(275, 300))
    whole = tmp_path / "whole.mp4"
    report = render_clip(marked, whole, info, 0.0, info.duration)
    # Its streams copied (into a new file, without the source's metadata): every picture as it was.
    assert framemd5(whole) == framemd5(marked)
    assert (report.render, report.copied_s) == ("smart", info.duration)


@pytest.mark.parametrize(
    ("size", "crop", "out_size", "left"),
    [
        ((640, 360), Crop("9:16", 0.5), (202, 360), 218),
        ((640, 360), Crop("9:16", 0.0), (202, 360), 0),
        ((640, 360), Crop("9:16", 1.0), (202, 360), 438),
        ((640, 360), Crop("1:1", 0.25), (360, 360), 0),
        ((640, 360), Crop("4:5", 0.7), (288, 360), 304),
        ((640, 360), Crop("16:9", 0.5), (640, 360), 0),
        ((360, 640), Crop("16:9", 0.5), (360, 202), 0),
    ],
)
def test_a_crop_keeps_the_region_around_x_at_the_asked_aspect(
    size: tuple[int, int],
    crop: Crop,
    out_size: tuple[int, int],
    left: int,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    w, h = size
    src = cached_clip(tmp_path_factory, f"columns-{w}x{h}.mp4", lambda p: column_clip(p, w, h))
    out = tmp_path / "crop.mp4"
    report = render_clip(src, out, probe(src), 0.4, 1.6, crop=crop)
    got = probe(out)
    assert (got.width, got.height) == out_size
    assert report.render == "full" and report.reason == f"cropping to {crop.aspect} changes every picture"
    # The kept pixels are the source's columns from `left` on: the same grey levels, edge for edge (the
    # pixels next to an edge between columns aside: the encoder blurs those a little).
    want = np.array(column_levels(src, w, h)[left : left + out_size[0]])
    got_levels = np.array(column_levels(out, *out_size))
    inside = np.array([2 < (left + x) % COLUMN < COLUMN - 3 for x in range(out_size[0])])
    assert np.abs(got_levels - want)[inside].max() <= 4
    assert len(gray_frames(out, *out_size)) == 30  # frames 10..39
    assert got.duration == pytest.approx(1.2, abs=0.05)


def test_a_cropped_clip_holds_exactly_the_frames_of_its_range(marked: Path, tmp_path: Path) -> None:
    out = tmp_path / "crop.mp4"
    render_clip(marked, out, probe(marked), 5.5, 7.0, crop=Crop("1:1", 0.0))
    frames = gray_frames(out, H, H)
    # The band's first seven bits survive a 240 px wide crop from the left edge.
    bits = frames[:, 16, 16::32][:, :7] > 128
    shown = [int(sum(1 << k for k in range(7) if row[k])) for row in bits]
    assert shown == [n % 128 for n in range(138, 175)]
    assert W == 320


def test_a_clip_of_sound_only_is_cut_at_the_same_times(tmp_path: Path) -> None:
    src = tmp_path / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=6", "-c:a", "aac", src)
    out = tmp_path / "clip.m4a"
    report = render_clip(src, out, probe(src), 1.0, 3.5)
    assert report.render == "full" and report.reason == "there is no video stream"
    assert len(mono_pcm(out)) / 48_000 == pytest.approx(2.5, abs=AUDIO_FRAME_S)


SOUND_ONLY = {"video_codec": None, "width": None, "height": None, "fps": None}


def _probe(**changes: object) -> Probe:
    base = Probe(duration=10.0, size=1, format_name="mp4", width=640, height=360, fps=25.0,
                 video_codec="h264", audio_codec="aac", rotation=0, bit_rate=None, audio_channels=2,
                 audio_sample_rate=48000, nb_frames=250)  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "end", "crop", "info", "field", "says"),
    [
        (2.0, 2.0, None, _probe(), "end", "must be after start"),
        (3.0, 2.0, None, _probe(), "end", "must be after start"),
        (-1.0, 2.0, None, _probe(), "start", "must not be negative"),
        (10.0, 12.0, None, _probe(), "start", "at or after the end of the media (10 s)"),
        (5.0, 10.5, None, _probe(), "end", "after the end of the media (10 s)"),
        (1.001, 1.039, None, _probe(), "end", "holds no frame"),
        (1.0, float("nan"), None, _probe(), "start", "finite"),
        (1.0, 2.0, Crop("9:16"), _probe(**SOUND_ONLY), "crop", "no picture"),
        (1.0, 2.0, Crop("3:4"), _probe(), "crop.aspect", "one of 9:16, 1:1, 4:5, 16:9"),
        (1.0, 2.0, Crop("1:1", 1.5), _probe(), "crop.x", "between 0"),
        (1.0, 1.05, None, _probe(**SOUND_ONLY), "end", "at least 0.1 s"),
    ],
)
def test_a_clip_that_does_not_fit_the_media_is_refused_naming_the_field(
    start: float, end: float, crop: Crop | None, info: Probe, field: str, says: str
) -> None:
    with pytest.raises(InvalidClip) as caught:
        window(start, end, info, crop=crop)
    assert caught.value.field == field and says in str(caught.value)


def test_a_window_snaps_to_the_frames_it_keeps() -> None:
    assert window(1.0, 1.04, _probe()) == (1.0, 1.04)  # exactly one frame
    assert window(1.001, 1.041, _probe()) == (1.04, 1.08)
    assert window(9.96, 10.0, _probe()) == (9.96, 10.0)  # the last frame
    with pytest.raises(InvalidClip, match="holds no frame"):
        window(9.97, 10.0, _probe())


def test_crop_filter_centres_on_x_and_keeps_even_sizes() -> None:
    assert crop_filter(Crop("9:16", 0.25)) == (
        "crop=w=trunc(min(iw\\,ih*(9/16)/sar)/2)*2:h=trunc(min(ih\\,iw*sar/(9/16))/2)*2"
        ":x=trunc(max(0\\,min(iw-ow\\,0.250000*iw-ow/2))/2)*2:y=trunc((ih-oh)/4)*2"
    )
