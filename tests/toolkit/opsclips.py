"""Clips with known content for the mask, cut and analyze tests; recording their progress, and cancelling."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mediajobs import process
from tests.toolkit.frames import INDEX_BITS, INDEX_COLUMN, ffmpeg

SIZE = (320, 240)
FPS = 25
TONE = "0.1*sin(2*PI*440*t)"  # a -20 dBFS sine


def cached_clip(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """Make a clip once per test session; the tests only read it."""
    path = factory.getbasetemp() / "opsclips" / name
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        partial = path.with_name(f"partial-{name}")
        make(partial)
        partial.rename(path)
    return path


def _encode(path: Path, video: str | None, audio: str | None, seconds: float) -> None:
    inputs: list[str] = []
    if video:
        inputs += ["-f", "lavfi", "-i", video]
    if audio:
        inputs += ["-f", "lavfi", "-i", audio]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    ffmpeg(*inputs, *codecs, "-t", f"{seconds:g}", path)


def pattern_clip(path: Path, seconds: float = 4.0, size: tuple[int, int] = SIZE, audio: bool = True) -> None:
    """testsrc (colour bars, moving digits) with a steady -20 dBFS tone."""
    w, h = size
    video = f"testsrc=s={w}x{h}:r={FPS}:d={seconds:g}"
    _encode(path, video, f"aevalsrc='{TONE}':s=48000:d={seconds:g}" if audio else None, seconds)


def long_clip(path: Path) -> None:
    """30 s of 640x360 moving pattern with a tone: slow enough to watch progress and to cancel midway."""
    _encode(path, f"testsrc2=s=640x360:r={FPS}:d=30", f"aevalsrc='{TONE}':s=48000:d=30", 30)


def heavy_clip(path: Path) -> None:
    """30 s of 1280x720 with a tone: analysis takes seconds, long enough for several progress blocks."""
    _encode(path, f"testsrc2=s=1280x720:r={FPS}:d=30", f"aevalsrc='{TONE}':s=48000:d=30", 30)


def counter_clip(path: Path, seconds: float = 8.0, beeps: Sequence[int] = (), audio: bool = True) -> None:
    """Each frame shows its index in binary; a 0.1 s 1 kHz beep starts exactly on each frame in `beeps`."""
    w, h = SIZE
    bits = ",".join(
        f"drawbox=x={k * INDEX_COLUMN}:y=0:w={INDEX_COLUMN}:h=ih:color=white:t=fill"
        f":enable='mod(floor(n/{1 << k}),2)'"
        for k in range(INDEX_BITS)
    )
    video = f"color=c=black:s={w}x{h}:r={FPS}:d={seconds:g},{bits}"
    gates = "+".join(f"between(t,{n / FPS:g},{n / FPS + 0.1:g})" for n in beeps) or "0"
    sound = f"aevalsrc='0.5*sin(2*PI*1000*t)*({gates})':s=48000:d={seconds:g}"
    _encode(path, video, sound if audio else None, seconds)


def analysis_clip(path: Path) -> None:
    """8 s: testsrc, hard cut to testsrc2 at 2 s, black 3-4 s, frozen 5-6.5 s, testsrc; silent 1-2 s."""
    w, h = SIZE
    src = f"s={w}x{h}:r={FPS}"
    video = (
        f"testsrc={src}:d=2[a];testsrc2={src}:d=1[b];color=c=black:{src}:d=1[c];"
        f"testsrc2={src}:d=1,tpad=stop_mode=clone:stop_duration=1.5[d];testsrc={src}:d=1.5[e];"
        "[a][b][c][d][e]concat=n=5:v=1:a=0"
    )
    audio = f"aevalsrc='{TONE}*not(between(t,1,2))':s=48000:d=8"
    _encode(path, video, audio, 8)


@dataclass
class ProgressLog:
    """What ffmpeg said about its progress and what the operation reported, in order."""

    expected_s: float
    events: list[tuple[str, float, float]] = field(default_factory=list)

    def fraction(self, value: float) -> None:
        self.events.append(("fraction", value, time.monotonic()))

    def line(self, line: str) -> None:
        key, _, value = line.partition("=")
        if key == "out_time_us" and value.lstrip("-").isdigit() and int(value) >= 0:
            self.events.append(("out_time", int(value) / 1e6, time.monotonic()))
        elif key == "progress":
            self.events.append((value, 0.0, time.monotonic()))

    @property
    def fractions(self) -> list[float]:
        return [value for kind, value, _ in self.events if kind == "fraction"]

    def assert_faithful(self, tolerance: float = 0.05, max_gap_s: float = 2.0) -> None:
        """Monotonic, ends at 1.0, every 2 s, and each mid-run value within 5 % of out_time / expected."""
        fractions = self.fractions
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        times = [t for kind, _, t in self.events if kind == "fraction"]
        assert max(b - a for a, b in itertools.pairwise(times)) < max_gap_s
        out_time, checked = 0.0, []
        for i, (kind, value, _) in enumerate(self.events):
            if kind == "out_time":
                out_time = value
            elif kind == "fraction" and i and self.events[i - 1][0] == "continue" and out_time > 0:
                assert abs(value - min(1.0, out_time / self.expected_s)) <= tolerance, (value, out_time)
                checked.append(out_time)
        # A check a quarter of the way in tells a right total from one that is off by a third or more.
        assert max(checked, default=0) >= self.expected_s / 4, f"too few progress blocks mid-run: {checked}"


@contextmanager
def watching_progress(monkeypatch: pytest.MonkeyPatch, expected_s: float) -> Iterator[ProgressLog]:
    """Record ffmpeg's own -progress lines next to the fractions the operation derives from them."""
    log = ProgressLog(expected_s)
    real_run = process.run

    def run(args: Sequence[str], **kwargs: Any) -> process.Completed:
        forward = kwargs.get("on_stdout")

        def tee(line: str) -> None:
            log.line(line)
            if forward is not None:
                forward(line)

        kwargs["on_stdout"] = tee
        return real_run(args, **kwargs)

    monkeypatch.setattr(process, "run", run)
    yield log


class CancelAtFirstProgress:
    """An `on_progress` that cancels the work it follows (`cancellable(self.event)`) at its first report,
    remembering when: a test then checks how soon everything stopped."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.at = 0.0

    def __call__(self, fraction: float) -> None:
        if not self.event.is_set():
            self.at = time.monotonic()
            self.event.set()

    def seconds_since(self) -> float:
        return time.monotonic() - self.at
