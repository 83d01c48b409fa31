"""A mask's sound: kept, muted, removed, or ranges silenced or bleeped exactly to the sample, with the
pictures copied as they are when nothing else changes — judged by the decoded samples and the frames' own
indices.

The edit itself is checked sample by sample on lossless output (the graph the mask feeds its encoder). The
masks' files carry AAC, a lossy code working on 1024-sample frames with overlapping windows: an edge between
sound and silence smears over two frames (43 ms at 48 kHz) around it, so those files are judged by windows:
exact digital silence from two AAC frames inside a muted range and at most 1 % of the source's peak nearer
its edges (measured: 0.4 %), the source's sound within -40 dB window by window outside (measured: -73 dB at
192 kbit/s from a 128 kbit/s source; the bound leaves room for other encoder builds), the bleep's level
within 0.5 dB and its pitch within 5 Hz inside a bleeped range.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mediajobs.errors import UnsupportedMedia
from mediajobs.toolkit.mask import InvalidRegion, Region, apply_mask
from mediajobs.toolkit.probe import probe
from mediajobs.toolkit.smart.render import smart_mask
from mediajobs.toolkit.sound import InvalidSound, Range, Sound, edit_filter
from tests.toolkit.frames import ffmpeg
from tests.toolkit.opsclips import cached_clip
from tests.toolkit.smartclips import FPS, H, W, gray, indices
from tests.toolkit.soundclips import (
    AAC_FRAME,
    RATE,
    SECONDS,
    assert_sound_edited,
    bleep,
    first_sample,
    packets_without_sei,
    pcm,
    sound_clip,
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "sound-source.mp4", sound_clip)


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "sound-only.m4a", lambda p: sound_clip(p, video=False))


RANGES = (
    Range(0.0, 0.25, "bleep"),  # from the very first sample
    Range(1.00001, 1.5, "mute"),  # a start between samples: from the next one
    Range(1.5, 2.123456, "bleep"),  # meets the range before it
    Range(5.9, 6.0, "mute"),  # to the end
)


def test_ranges_are_silenced_and_bleeped_exactly_to_the_sample(source: Path) -> None:
    sound = Sound("keep", RANGES).checked(probe(source))
    reference = pcm(source)
    edited = pcm(source, "-filter_complex", edit_filter(sound, RATE), "-map", "[a]")
    assert edited.shape == reference.shape
    touched = np.zeros(len(reference), dtype=bool)
    for r in RANGES:
        a, b = first_sample(r.start), min(first_sample(r.end), len(reference))
        touched[a:b] = True
        if r.style == "mute":
            assert not edited[a:b].any(), r  # digital silence, every sample of the range
        else:
            expected = np.repeat(bleep(b - a)[:, None], 2, axis=1)
            assert np.abs(edited[a:b] - expected).max() < 1e-6, r
    # Every other sample is the source's, bit for bit (so each range starts and ends where it says).
    assert np.array_equal(edited[~touched], reference[~touched])
    assert touched.sum() == sum(
        min(first_sample(r.end), len(touched)) - first_sample(r.start) for r in RANGES
    )


def test_a_mask_of_the_sound_alone_copies_every_picture(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "bleeped.mp4"
    report = smart_mask(source, out, probe(source), [], sound=Sound("keep", RANGES))
    assert (report.render, report.reencoded_s, report.copied_s) == ("smart", 0.0, probe(source).duration)
    assert indices(gray(out)) == list(range(SECONDS * FPS))
    assert packets_without_sei(out) == packets_without_sei(source)  # the very packets, bit for bit
    assert_sound_edited(out, source, RANGES)


@pytest.mark.parametrize("render", ["smart", "full"])
def test_regions_and_sound_ranges_in_one_mask(render: str, source: Path, tmp_path: Path) -> None:
    ranges = (Range(2.5, 3.25, "bleep"), Range(4.0, 4.5, "mute"))
    region = [Region(40, 60, 80, 60, start=4.1, end=4.9, style="black")]
    out = tmp_path / "masked.mp4"
    if render == "smart":
        report = smart_mask(source, out, probe(source), region, sound=Sound("keep", ranges))
        assert (report.render, report.copied_s) == ("smart", 4.0)
    else:
        apply_mask(source, out, probe(source), region, sound=Sound("keep", ranges))
    frames = gray(out)
    assert indices(frames) == list(range(SECONDS * FPS))
    assert frames[105][60:120, 40:120].max() <= 16 and frames[100][60:120, 40:120].max() > 16
    assert_sound_edited(out, source, ranges)


def test_audio_mute_silences_every_sample_and_remove_leaves_the_pictures(
    source: Path, tmp_path: Path
) -> None:
    muted, removed = tmp_path / "muted.mp4", tmp_path / "removed.mp4"
    smart_mask(source, muted, probe(source), [], sound=Sound("mute"))
    assert len(pcm(muted)) >= len(pcm(source)) - AAC_FRAME and not pcm(muted).any()
    report = smart_mask(source, removed, probe(source), [], sound=Sound("remove"))
    assert report.render == "smart" and not probe(removed).has_audio
    assert packets_without_sei(removed) == packets_without_sei(source)


def test_sound_without_pictures_is_edited_too(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "bleeped.mp4"
    ranges = (Range(1.0, 2.0, "bleep"),)
    report = smart_mask(song, out, probe(song), [], sound=Sound("keep", ranges))
    assert report.render == "full" and not probe(out).has_video
    assert_sound_edited(out, song, ranges)
    with pytest.raises(InvalidSound, match="would leave nothing"):
        smart_mask(song, tmp_path / "none.mp4", probe(song), [], sound=Sound("remove"))
    with pytest.raises(UnsupportedMedia, match="needs a video stream"):
        smart_mask(song, tmp_path / "none.mp4", probe(song), [Region(0, 0, 10, 10)])


@pytest.mark.parametrize(
    ("sound", "field", "words"),
    [
        (Sound("keep", (Range(1.0, 7.0),)), "audio_ranges.0.end", "after the end of the media (6 s)"),
        (Sound("keep", (Range(1.0, 2.0), Range(6.0, 6.5))), "audio_ranges.1.start", "at or after the end"),
        (Sound("keep", (Range(2.0, 1.0),)), "audio_ranges.0.end", "must be after its start"),
        (Sound("keep", (Range(math.nan, 1.0),)), "audio_ranges.0.start", "finite"),
        (Sound("keep", (Range(0.0, math.inf),)), "audio_ranges.0.start", "finite"),
        (Sound("keep", (Range(3.0, 4.0), Range(1.0, 3.5))), "audio_ranges.0", "overlaps another range"),
        (Sound("keep", (Range(1.0, 2.0, "beep"),)), "audio_ranges.0.style", "mute, bleep"),
        (Sound("remove", (Range(1.0, 2.0),)), "audio_ranges", 'with audio "remove" leave them out'),
        (Sound("mute", (Range(1.0, 2.0),)), "audio_ranges", 'with audio "mute" leave them out'),
        (Sound("louder"), "audio", "keep, mute, remove"),
    ],
)
def test_sound_that_does_not_fit_is_refused_naming_the_field(
    sound: Sound, field: str, words: str, source: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidSound) as caught:
        smart_mask(source, tmp_path / "out.mp4", probe(source), [], sound=sound)
    assert caught.value.field == field and words in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_mask_that_changes_nothing_or_edits_missing_sound_is_refused(tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=s={W}x{H}:r={FPS}:d=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        silent,
    )
    with pytest.raises(InvalidRegion, match="unless the mask changes the sound"):
        smart_mask(silent, tmp_path / "out.mp4", probe(silent), [])
    with pytest.raises(InvalidSound, match="no sound to mute; leave audio out") as caught:
        smart_mask(silent, tmp_path / "out.mp4", probe(silent), [], sound=Sound("mute"))
    assert caught.value.field == "audio"
