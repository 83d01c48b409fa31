from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from mediajobs.errors import JobCancelled
from mediajobs.process import cancellable
from mediajobs.toolkit.analyze import Findings, analyze
from mediajobs.toolkit.probe import probe
from tests.toolkit.frames import ffmpeg, running_ffmpeg
from tests.toolkit.opsclips import (
    TONE,
    CancelAtFirstProgress,
    analysis_clip,
    cached_clip,
    heavy_clip,
    long_clip,
    pattern_clip,
    watching_progress,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "analysis.mp4", analysis_clip)


@pytest.fixture(scope="module")
def report(clip: Path) -> dict[str, Any]:
    return analyze(clip, probe(clip))


@pytest.fixture(scope="module")
def long(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "long.mp4", long_clip)


def spans(segments: list[dict[str, float]]) -> list[tuple[float, float]]:
    return [(s["start"], s["end"]) for s in segments]


def found(segments: list[dict[str, float]], start: float, end: float) -> bool:
    return any(abs(s - start) <= 0.1 and abs(e - end) <= 0.1 for s, e in spans(segments))


def test_hard_cut_is_found_and_moving_pictures_are_not_cuts(report: dict[str, Any]) -> None:
    times = [scene["time"] for scene in report["scenes"]]
    assert any(abs(t - 2.0) <= 0.1 for t in times)
    assert not [t for t in times if 0.1 < t < 1.9]  # testsrc moves all the time, without a cut
    assert all(0 < scene["score"] <= 1 for scene in report["scenes"])


def test_black_silence_and_freeze_are_found_at_their_times(report: dict[str, Any]) -> None:
    assert spans(report["black"]) == [pytest.approx((3.0, 4.0), abs=0.1)]
    assert spans(report["silence"]) == [pytest.approx((1.0, 2.0), abs=0.1)]
    assert found(report["freeze"], 5.0, 6.5)
    for segment in report["black"] + report["silence"] + report["freeze"]:
        assert segment["duration"] == pytest.approx(segment["end"] - segment["start"], abs=0.002)


def test_loudness_is_plausible_for_a_minus_20_dbfs_tone(report: dict[str, Any]) -> None:
    loudness = report["loudness"]
    assert -26 < loudness["integrated_lufs"] < -21  # a sine's RMS is 3 dB below its peak
    assert -21 < loudness["true_peak_dbtp"] < -19
    assert 0 <= loudness["range_lu"] < 5


def test_report_is_plain_json_with_the_probe(clip: Path, report: dict[str, Any]) -> None:
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert report["probe"] == probe(clip).public()


def test_video_without_audio_has_no_silence_or_loudness(tmp_path: Path) -> None:
    path = tmp_path / "mute.mp4"
    pattern_clip(path, seconds=2, audio=False)
    report = analyze(path, probe(path))
    assert report["silence"] == [] and report["loudness"] is None


def test_audio_only_file_has_no_picture_findings_and_closes_silence_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc='{TONE}*lt(t,1)':s=48000:d=3", "-c:a", "aac", path)
    report = analyze(path, probe(path))
    assert report["scenes"] == report["black"] == report["freeze"] == []
    assert spans(report["silence"]) == [pytest.approx((1.0, 3.0), abs=0.1)]
    assert all(math.isfinite(value) for value in report["loudness"].values())


def test_freeze_lasting_to_the_end_closes_at_the_duration(tmp_path: Path) -> None:
    path = tmp_path / "stops.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=1,tpad=stop_mode=clone:stop_duration=1.5", path)
    assert found(analyze(path, probe(path))["freeze"], 1.0, 2.5)


def test_findings_read_exponent_times_and_keep_only_the_last_loudness_summary() -> None:
    findings = Findings()
    lines = [
        "[Parsed_ebur128_5 @ 0x1] Summary:",
        "    I:         -70.0 LUFS",
        "    Peak:       -inf dBFS",
        "[silencedetect @ 0x2] silence_start: 1e-05",
        "[silencedetect @ 0x2] silence_end: 2.5 | silence_duration: 2.49999",
        "[Parsed_ebur128_5 @ 0x3] Summary:",
        "    I:         -23.9 LUFS",
        "    LRA:         1.8 LU",
        "    Peak:      -19.7 dBFS",
    ]
    for line in lines:
        findings.feed(line)
    assert findings.silence == [{"start": 0.0, "end": 2.5, "duration": 2.5}]
    assert findings.loudness == {"integrated_lufs": -23.9, "range_lu": 1.8, "true_peak_dbtp": -19.7}


def test_progress_follows_ffmpeg_against_the_duration(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    heavy = cached_clip(tmp_path_factory, "heavy.mp4", heavy_clip)
    with watching_progress(monkeypatch, expected_s=30.0) as log:
        analyze(heavy, probe(heavy), threads=1, on_progress=log.fraction)
    log.assert_faithful()


def test_cancel_stops_ffmpeg_within_two_seconds(long: Path) -> None:
    stop = CancelAtFirstProgress()
    with cancellable(stop.event), pytest.raises(JobCancelled):
        analyze(long, probe(long), on_progress=stop)
    assert stop.seconds_since() < 2.0
    assert running_ffmpeg(long) == []
