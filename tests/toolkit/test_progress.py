from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs import process
from mediajobs.toolkit.probe import probe
from mediajobs.toolkit.progress import FfmpegProgress, progress_args
from tests.clips import MakeClip


def block(out_time_us: str, speed: str = "1.5x", progress: str = "continue") -> list[str]:
    """One block as ffmpeg 5.1 writes it; out_time mirrors out_time_us like the real thing."""
    micros = int(out_time_us) if out_time_us.lstrip("-").isdigit() else None
    clock = "N/A" if micros is None else f"{'-' if micros < 0 else ''}00:00:{abs(micros) / 1e6:09.6f}"
    return [
        "frame=10",
        f"out_time_us={out_time_us}",
        f"out_time_ms={out_time_us}",
        f"out_time={clock}",
        f"speed={speed}",
        f"progress={progress}",
    ]


def feed(tracker: FfmpegProgress, lines: list[str]) -> None:
    for line in lines:
        tracker.feed(line)


def test_progress_args_ask_for_machine_readable_stats() -> None:
    assert progress_args() == ["-progress", "pipe:1", "-nostats", "-stats_period", "0.5"]
    assert progress_args(1.0)[-1] == "1"


def test_progress_reports_once_per_block_with_speed() -> None:
    updates: list[tuple[float, float | None]] = []
    tracker = FfmpegProgress(10.0, lambda f, s: updates.append((f, s)))

    feed(tracker, block("2500000", "2.0x"))

    assert updates == [(0.25, 2.0)]


def test_progress_treats_na_and_negative_out_time_as_no_data() -> None:
    updates: list[float] = []
    tracker = FfmpegProgress(10.0, lambda f, s: updates.append(f))

    feed(tracker, [*block("N/A", "N/A"), *block("-9223372036854775807")])
    feed(tracker, ["out_time=-577014:32:22.775808", "progress=continue"])

    assert updates == [0.0, 0.0, 0.0]


def test_progress_never_goes_back_and_is_clamped() -> None:
    updates: list[float] = []
    tracker = FfmpegProgress(4.0, lambda f, s: updates.append(f))

    feed(tracker, [*block("3000000"), *block("2000000"), *block("9000000")])

    assert updates == [0.75, 0.75, 1.0]


def test_progress_end_means_done() -> None:
    updates: list[float] = []
    tracker = FfmpegProgress(100.0, lambda f, s: updates.append(f))

    feed(tracker, block("1000000", progress="end"))

    assert updates == [1.0]


def test_progress_falls_back_to_clock_out_time() -> None:
    updates: list[float] = []
    tracker = FfmpegProgress(120.0, lambda f, s: updates.append(f))

    feed(tracker, ["out_time=00:01:00.000000", "speed=N/A", "progress=continue"])

    assert updates == [0.5]
    assert tracker.speed is None


def test_progress_follows_a_real_ffmpeg_run(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip(duration=3.0)
    total = probe(clip).duration
    seen: list[tuple[float, float | None]] = []
    tracker = FfmpegProgress(total, lambda f, s: seen.append((f, tracker.out_time_s)))
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), *progress_args(0.1), "-f", "null", "-"]

    process.run(args, on_stdout=tracker.feed)

    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    for fraction, out_time in seen[:-1]:
        # Every update is exactly what ffmpeg said it had produced, as a share of the whole.
        assert out_time is not None
        assert fraction == pytest.approx(min(1.0, out_time / total), abs=0.05)
