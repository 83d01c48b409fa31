"""Running ffmpeg for the media toolkit: one command, with progress, without network, under CPU limits.

Every toolkit function that runs ffmpeg (HLS, mask, cut, analyze, thumbnails) goes through `run_ffmpeg`, so
progress parsing, the sandbox and the limits are decided in one place; so is what a written file carries of
its source (`NO_METADATA`, `sei_filter`): nothing but the pictures and the sound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mediajobs import process
from mediajobs.toolkit.inputs import encode_limits, input_args, watch_pixels
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.progress import FfmpegProgress, fraction_only, progress_args

FFMPEG = "ffmpeg"
MP4_SUFFIXES = frozenset({".mp4", ".m4v", ".mov"})
# Output options: no global or stream tags (title, comment, artist, GPS location, creation time, the source's
# encoder and handler names, language, Matroska tags, a TS's service names) and no chapters. ffmpeg copies all
# of them into every output file by default; stream tags also make the mp4 muxer add tracks of its own (a
# timecode track from `timecode`, a text track from chapters). Subtitle, data and attachment streams never
# travel: every command maps the streams it writes.
NO_METADATA = ("-map_metadata", "-1", "-map_chapters", "-1")
# The NAL unit types of SEI messages: what a stream copy would otherwise carry on of its source besides the
# pictures (the source encoder's settings string, a camera's recording time and GPS in user data, captions).
_SEI_UNITS = {"h264": "6", "hevc": "39|40"}


def sei_filter(codec: str | None) -> str | None:
    """The bitstream filter dropping a copied `codec` stream's SEI messages; None when it has none to drop."""
    units = _SEI_UNITS.get(codec or "")
    return f"filter_units=remove_types={units}" if units else None


def source_input(src: str | Path, source: Probe) -> list[str]:
    """`-i` for a probed source: read to a little past its duration, every frame within its `max_pixels`."""
    return input_args(src, duration_s=source.duration, max_pixels=source.max_pixels)


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

    The output carries no metadata of the source (`NO_METADATA`; a command writing several outputs gives each
    of the others its own). It runs without network, under a CPU-time limit sized from the `source` it reads
    and the number of `outputs` it encodes; a decoder refusing a frame over the source's `max_pixels` stops it
    with TooLarge.
    """
    tracker = FfmpegProgress(total_s, fraction_only(on_progress))
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-y", *args[:-1], *progress_args(), *NO_METADATA, args[-1]]
    completed = process.run(
        argv,
        on_stdout=tracker.feed if on_progress else None,
        on_stderr=watch_pixels(on_stderr),
        cwd=cwd,
        limits=encode_limits(source.duration, outputs=outputs),
        network=False,
    )
    if on_progress is not None and tracker.fraction < 1.0:
        on_progress(1.0)  # an ffmpeg that exits cleanly without a final progress block still finished
    return completed
