"""Analyze a media file in one ffmpeg pass: scene changes, black, silence, frozen picture and loudness.

The result document (all times in seconds from the start of the file, rounded to milliseconds):

    {
      "probe":    Probe.public() of the source,
      "scenes":   [{"time": 2.0, "score": 0.84}],               # hard cuts; score 0..1, higher is sharper
      "black":    [{"start": 3.0, "end": 4.0, "duration": 1.0}],  # picture (almost) black
      "silence":  [{"start": 1.0, "end": 2.0, "duration": 1.0}],  # sound below -50 dBFS
      "freeze":   [{"start": 5.0, "end": 6.5, "duration": 1.5}],  # picture unchanged (black counts too)
      "loudness": {"integrated_lufs": -23.0, "range_lu": 1.8, "true_peak_dbtp": -19.7} | null
    }

Segments last at least `min_duration_s`; one still open when the file ends closes at its duration. Without a
video stream, scenes, black and freeze are empty; without an audio stream, silence is empty and loudness null;
a value ffmpeg cannot measure (the true peak of digital silence, -inf) is null.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mediajobs.errors import UnsupportedMedia
from mediajobs.toolkit.ffmpeg import run_ffmpeg, source_input, thread_args
from mediajobs.toolkit.probe import Probe

SILENCE_NOISE_DB = -50
LOUDNESS_KEYS = ("integrated_lufs", "range_lu", "true_peak_dbtp")
# Scene, black and freeze detection do not need every pixel of a large frame: at most 640 pixels wide, their
# cost on 1080p drops to about a third of what full resolution costs.
ANALYSIS_WIDTH = 640

# ffmpeg prints times with %g: "1e-05" happens, and so do "-inf" and "nan".
_NUMBER = r"(-?(?:\d+(?:\.\d*)?(?:e[-+]?\d+)?|inf|nan))"
_PATTERNS = {
    "pts_time": re.compile(r"\bpts_time:" + _NUMBER),
    "scene_score": re.compile(r"lavfi\.scene_score=" + _NUMBER),
    "black": re.compile(r"black_start:" + _NUMBER + r" black_end:" + _NUMBER),
    "freeze_start": re.compile(r"freezedetect\.freeze_start: " + _NUMBER),
    "freeze_end": re.compile(r"freezedetect\.freeze_end: " + _NUMBER),
    "silence_start": re.compile(r"silence_start: " + _NUMBER),
    "silence_end": re.compile(r"silence_end: " + _NUMBER),
    "integrated_lufs": re.compile(r"^\s*I:\s+" + _NUMBER + " LUFS"),
    "range_lu": re.compile(r"^\s*LRA:\s+" + _NUMBER + " LU$"),
    "true_peak_dbtp": re.compile(r"^\s*Peak:\s+" + _NUMBER + " dBFS"),
}


def _segment(start: float, end: float) -> dict[str, float]:
    return {"start": round(start, 3), "end": round(end, 3), "duration": round(end - start, 3)}


class Findings:
    """Collects what the detection filters log on ffmpeg's stderr, one line at a time."""

    def __init__(self) -> None:
        self.scenes: list[dict[str, float]] = []
        self.black: list[dict[str, float]] = []
        self.silence: list[dict[str, float]] = []
        self.freeze: list[dict[str, float]] = []
        self.loudness: dict[str, float | None] = {}
        self._open: dict[str, float] = {}
        self._frame_time: float | None = None

    def feed(self, line: str) -> None:
        for name, pattern in _PATTERNS.items():
            match = pattern.search(line)
            if match:
                self._record(name, [float(value) for value in match.groups()])
                return
        if "Summary:" in line:
            # ffmpeg configures the graph once just to learn its outputs; that ebur128 instance prints an
            # empty summary before any audio flows, so only the last summary counts.
            self.loudness = {}

    def _record(self, name: str, values: list[float]) -> None:
        value = values[0]
        if name == "pts_time":
            self._frame_time = value
        elif name == "scene_score" and self._frame_time is not None:
            self.scenes.append({"time": round(self._frame_time, 3), "score": round(value, 4)})
        elif name == "black":
            self.black.append(_segment(values[0], values[1]))
        elif name in ("freeze_start", "silence_start"):
            self._open[name.split("_")[0]] = value
        elif name in ("freeze_end", "silence_end"):
            self._close(name.split("_")[0], value)
        else:
            self.loudness[name] = value if math.isfinite(value) else None

    def _close(self, kind: str, end: float) -> None:
        start = self._open.pop(kind, None)
        if start is not None:
            getattr(self, kind).append(_segment(start, end))

    def finish(self, duration: float) -> None:
        # freezedetect reports no end for a freeze that lasts until the last frame.
        for kind in list(self._open):
            self._close(kind, max(duration, self._open[kind]))


def build_analyze_filter(
    probe: Probe, scene_threshold: float, min_duration_s: float
) -> tuple[str, list[str]]:
    """A filter_complex running every detector, and the `-map` labels of its outputs."""
    chains, outputs = [], []
    if probe.has_video:
        chains.append(
            f"[0:v:0]scale='min({ANALYSIS_WIDTH},iw)':-2:flags=fast_bilinear,"
            f"blackdetect=d={min_duration_s:g},freezedetect=d={min_duration_s:g},"
            # Every frame goes on to the output: ffmpeg writes no progress until each output stream has had
            # a frame, so dropping all but the cuts would freeze progress until the first cut.
            f"select='gte(scene,0)',metadata=mode=print:key=lavfi.scene_score:value={scene_threshold:g}"
            ":function=greater[v]"
        )
        outputs.append("[v]")
    if probe.has_audio:
        chains.append(
            f"[0:a:0]silencedetect=n={SILENCE_NOISE_DB}dB:d={min_duration_s:g},"
            # framelog=verbose keeps the ten-per-second measurements out of the info-level log we parse.
            "ebur128=peak=true:framelog=verbose[a]"
        )
        outputs.append("[a]")
    return ";".join(chains), outputs


def analyze(
    src: str | Path,
    probe: Probe,
    *,
    scene_threshold: float = 0.3,
    min_duration_s: float = 0.5,
    threads: int = 0,
    on_progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """The analysis document (see the module docstring) of `src`."""
    if not probe.has_video and not probe.has_audio:
        raise UnsupportedMedia("nothing to analyze: no video or audio stream")
    graph, outputs = build_analyze_filter(probe, scene_threshold, min_duration_s)
    before, _ = thread_args(threads)
    findings = Findings()
    args = [
        *before,
        *source_input(src, probe),
        "-filter_complex", graph,
        *(arg for label in outputs for arg in ("-map", label)),
        "-f", "null", "-",
    ]  # fmt: skip
    run_ffmpeg(args, probe.duration, on_progress, source=probe, on_stderr=findings.feed)
    findings.finish(probe.duration)
    loudness = None
    if probe.has_audio:
        loudness = {key: findings.loudness.get(key) for key in LOUDNESS_KEYS}
    return {
        "probe": probe.public(),
        "scenes": findings.scenes,
        "black": findings.black,
        "silence": findings.silence,
        "freeze": findings.freeze,
        "loudness": loudness,
    }
