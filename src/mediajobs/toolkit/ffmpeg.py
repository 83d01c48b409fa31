"""Running ffmpeg for the media toolkit: one command, with progress, without network, under CPU limits.

Every toolkit function that runs ffmpeg (HLS, mask, cut, analyze, thumbnails) goes through `run_ffmpeg`, so
progress parsing, the sandbox and the limits are decided in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mediajobs import process
from mediajobs.toolkit.inputs import encode_limits
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.progress import FfmpegProgress, fraction_only, progress_args

FFMPEG = "ffmpeg"
MP4_SUFFIXES = frozenset({".mp4", ".m4v", ".mov"})


def thread_args(threads: int) -> tuple[list[str], list[str]]:
    """(input-side, output-side) ffmpeg options for a thread count; 0 leaves ffmpeg's automatic choice."""
    if threads <= 0:
        return [], []
    return ["-threads", str(threads), "-filter_complex_threads", str(threads)], ["-threads", str(threads)]


def vfr_args() -> list[str]:
    """Frames keep their own timestamps: a gap in the source is not filled with copies of a frame."""
    # The mp4 muxer makes ffmpeg default to constant frame rate, which duplicates frames across gaps.
    return ["-fps_mode", "vfr"]


def faststart_args(dst: Path) -> list[str]:
    """Put an mp4's index first, so browsers start playing before the whole file has arrived."""
    return ["-movflags", "+faststart"] if dst.suffix.lower() in MP4_SUFFIXES else []


def run_ffmpeg(
    args: Sequence[str],
    total_s: float,
    on_progress: Callable[[float], None] | None,
    *,
    source: Probe,
    outputs: int = 1,
    cwd: Path | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> process.Completed:
    """Run one ffmpeg command (`args` end with the output), reporting progress against `total_s` of output.

    It runs without network, under a CPU-time limit sized from the `source` it reads and the number of
    `outputs` it encodes.
    """
    tracker = FfmpegProgress(total_s, fraction_only(on_progress))
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-y", *args[:-1], *progress_args(), args[-1]]
    completed = process.run(
        argv,
        on_stdout=tracker.feed if on_progress else None,
        on_stderr=on_stderr,
        cwd=cwd,
        limits=encode_limits(source.duration, outputs=outputs),
        network=False,
    )
    if on_progress is not None and tracker.fraction < 1.0:
        on_progress(1.0)  # an ffmpeg that exits cleanly without a final progress block still finished
    return completed
