"""Progressive files from an HLS ladder's segments, never encoded again: an MP4 (H.264/AAC) and an M4A (AAC).

A rendition's MPEG-TS segments and the audio rendition's are read back to back (`segments_input_args`) and
copied into MP4 with the index first (`+faststart`), so a browser plays the file while it downloads. Both
inputs keep their timestamps (`-copyts`) and are moved by one offset, the video's first timestamp: the sound
keeps its place against the picture (AAC priming stays before zero, as in the source, behind an edit list).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mediajobs import process
from mediajobs.errors import UnsupportedMedia
from mediajobs.toolkit.ffmpeg import NO_METADATA, run_ffmpeg
from mediajobs.toolkit.inputs import probe_limits, segments_input_args, write_segment_list
from mediajobs.toolkit.probe import FFPROBE, Probe
from mediajobs.toolkit.progress import FractionCallback

MP4_TYPE = "video/mp4"
M4A_TYPE = "audio/mp4"


def first_pts(segment: Path, stream: str) -> float:
    """The first presentation time of `stream` ("v:0", "a:0") in one of our MPEG-TS segments."""
    args = [FFPROBE, "-v", "error", "-select_streams", stream, "-show_entries", "stream=start_time"]
    args += ["-of", "csv=p=0", "-protocol_whitelist", "file", "-format_whitelist", "mpegts"]
    done = process.run(
        [*args, f"file:{segment.resolve()}"],
        capture_stdout=True,
        timeout_s=60,
        limits=probe_limits(),
        network=False,
    )
    found = first_number(done.stdout or "")
    if found is None:
        raise UnsupportedMedia(f"segment {segment.name} has no {stream} stream with a start time")
    return found


def first_number(text: str) -> float | None:
    """The first number ffprobe printed (a TS file's programs repeat their streams' fields after them)."""
    for line in text.splitlines():
        try:
            return float(line.strip().split(",")[0])
        except ValueError:
            continue
    return None


def remux(
    *,
    video: Sequence[Path],
    audio: Sequence[Path],
    mp4: Path | None,
    m4a: Path | None,
    probe: Probe,
    work_dir: Path,
    on_progress: FractionCallback | None = None,
) -> None:
    """Write `mp4` (the `video` segments with the `audio` ones, if any) and/or `m4a` (the audio alone).

    One ffmpeg process, stream copies only. `probe` (the asset's) sizes the CPU-time limit and the progress.
    """
    if mp4 is None and m4a is None:
        return
    if mp4 is not None and not video:
        raise UnsupportedMedia("an MP4 download needs video segments")
    if m4a is not None and not audio:
        raise UnsupportedMedia("an audio download needs audio segments")
    work_dir.mkdir(parents=True, exist_ok=True)
    args = ["-v", "error", "-copyts"]
    inputs: dict[str, int] = {}
    for name, segments in (("video", video), ("audio", audio)):
        if segments:
            args += segments_input_args(write_segment_list(list(segments), work_dir / f"{name}.txt"))
            inputs[name] = len(inputs)
    # Every output starts where the picture does (or the sound, without a picture).
    offset = first_pts(video[0], "v:0") if video else first_pts(audio[0], "a:0")
    common = ["-c", "copy", *NO_METADATA, "-output_ts_offset", f"{-offset:.6f}", "-movflags", "+faststart"]
    outputs: list[str] = []
    if mp4 is not None:
        outputs += ["-map", f"{inputs['video']}:v:0"]
        if "audio" in inputs:
            outputs += ["-map", f"{inputs['audio']}:a:0", "-bsf:a", "aac_adtstoasc"]
        outputs += [*common, "-f", "mp4", str(mp4)]
    if m4a is not None:
        outputs += ["-map", f"{inputs['audio']}:a:0", "-bsf:a", "aac_adtstoasc"]
        outputs += [*common, "-f", "mp4", str(m4a)]
    run_ffmpeg([*args, *outputs], probe.duration, on_progress, source=probe)
    for out in (mp4, m4a):
        if out is not None and (not out.is_file() or out.stat().st_size == 0):
            raise UnsupportedMedia(f"ffmpeg wrote no {out.name}")
