"""Making an HLS ladder (planned by `ladder`): its segments on one grid, whole or by chunk.

A source browsers play as it is keeps its own video stream as the top rendition, cut into segments at its
own keyframes without re-encoding (`remux`): seconds for any length. Every other
rendition is encoded (`encode`) with keyframes forced at the grid's starts, one chunk of segments at a time
or all at once, so that all of them cut at the same instants. Audio is one rendition of its own, encoded (or
copied) once for the whole file (`encode_audio`), never per chunk, so no join ever has a gap.

All outputs run with `-copyts` and one constant offset, so segments made by different processes on
different hosts lie on one timeline and join without seams.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from mediajobs.errors import ProcessFailed, UnsupportedMedia
from mediajobs.toolkit import nal, plain
from mediajobs.toolkit.ffmpeg import NO_METADATA, run_ffmpeg, sei_filter, source_input, thread_args
from mediajobs.toolkit.hls.grid import EARLY_S, Grid
from mediajobs.toolkit.hls.ladder import AUDIO, AUDIO_BITRATE, PRESET, Ladder, Rendition
from mediajobs.toolkit.hls.playlists import SEGMENT_NAME
from mediajobs.toolkit.nal import first_slice_is_idr
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.progress import FractionCallback
from mediajobs.toolkit.sps import Picture

# Every output's timestamps are the source's plus this: no decode timestamp is ever negative, so no muxer
# shifts one segment's timeline on its own (the mpegts muxer would, per segment file).
TS_OFFSET_S = 10.0
# The mpegts muxer delays every timestamp by twice ffmpeg's -muxdelay (0.7 s by default) on top of that: a
# source time t is at t + TS_OFFSET_S + MPEGTS_DELAY_S in every segment (tests/media/test_hls.py checks it).
MPEGTS_DELAY_S = 1.4
MPEGTS_HZ = 90_000
# Audio encoded past the last segment wanted: the AAC encoder's frames before a cut depend on a frame after.
AUDIO_LOOKAHEAD_S = 0.5
# Forced keyframes only: x264's own would fall at different frames in different chunks.
MAX_SEGMENT_S = 12.0


def mpegts_time(t: float) -> int:
    """The 90 kHz timestamp our segments give the source's time `t` (where X-TIMESTAMP-MAP puts captions)."""
    return round((t + TS_OFFSET_S + MPEGTS_DELAY_S) * MPEGTS_HZ)


def _segment_args(grid: Grid, first: int, stop: int, directory: str) -> list[str]:
    """An output writing segments [first, stop) of `grid` as `<directory>/seg_NNNNN.ts`."""
    cuts = ",".join(f"{t + TS_OFFSET_S - EARLY_S:.6f}" for t in grid.starts[first + 1 : stop]) or "99999999"
    args = ["-avoid_negative_ts", "disabled", "-output_ts_offset", f"{TS_OFFSET_S:g}"]
    args += ["-f", "segment", "-segment_format", "mpegts", "-segment_times", cuts]
    args += ["-segment_start_number", str(first), *NO_METADATA]
    return [*args, f"{directory}/{SEGMENT_NAME.replace('{:05d}', '%05d')}"]


def _span_args(grid: Grid, first: int, stop: int) -> tuple[list[str], list[str]]:
    """(input-side, output-side) options that read only the pictures of segments [first, stop)."""
    start, end = grid.span(first, stop)
    before = ["-ss", f"{start - EARLY_S:.6f}"] if first > 0 else []
    after = ["-to", f"{end - EARLY_S:.6f}"] if end is not None else []
    return before, after


def remux(
    src: Path,
    out_dir: Path,
    ladder: Ladder,
    probe: Probe,
    *,
    grid: Grid | None = None,
    prefix: bool = False,
    on_segments: Callable[[int], None] | None = None,
    on_progress: FractionCallback | None = None,
) -> None:
    """Cut the source's own video (and its AAC audio when `ladder.audio == "copy"`) into segments.

    `grid` (default the ladder's); `prefix`: the grid covers the stream's first segments only and the cut
    stops where its last segment ends. `on_segments(n)`, called as ffmpeg goes: segments [0, n) of every
    output are written whole (the rest are being written).
    """
    grid = grid or ladder.grid
    top = ladder.renditions[0]
    assert top.copy
    (out_dir / top.name).mkdir(parents=True, exist_ok=True)
    n = len(grid)
    stop = ["-to", f"{grid.end - EARLY_S:.6f}"] if prefix else []
    args = ["-v", "error", "-copyts", *source_input(src, probe)]
    # The same pass writes the stream's parameter sets out, for `picture_problem` (beside out_dir: never
    # uploaded with the segments).
    args += [*stop, *nal.parameter_set_output("h264", _parameter_sets(out_dir))]
    # Nothing but the pictures: the source's SEI (its encoder's settings, a camera's time and place) stays.
    args += ["-map", "0:V:0", "-c:v", "copy", "-bsf:v", str(sei_filter("h264")), *stop]
    args += _segment_args(grid, 0, n, top.name)
    outputs = [top.name]
    if ladder.audio == "copy":
        (out_dir / AUDIO).mkdir(parents=True, exist_ok=True)
        args += ["-map", "0:a:0", "-c:a", "copy", *stop, *_segment_args(grid, 0, n, AUDIO)]
        outputs.append(AUDIO)
    dirs = [out_dir / name for name in outputs]
    progress = _watching(dirs, n, on_segments, on_progress)
    try:
        run_ffmpeg(args, grid.end if prefix else probe.duration, progress, source=probe, cwd=out_dir)
    except ProcessFailed:
        # Where the cutter stopped: a copy passes damage on until the muxer meets what it cannot parse.
        at = grid.starts[max(0, min(written(d) for d in dirs) - 1)]
        with _corrupt_is_unsupported(at, grid.end if prefix else probe.duration):
            raise
    for d in dirs:
        segment_sizes(d, 0, n)
    if on_segments is not None:
        on_segments(n)


def written(directory: Path) -> int:
    """How many segment files a segment muxer has opened in `directory` (numbered from 0)."""
    count = 0
    while (directory / SEGMENT_NAME.format(count)).is_file():
        count += 1
    return count


def copy_is_exact(out_dir: Path, ladder: Ladder) -> str | None:
    """After `remux`: why its segments cannot play as they are, or None.

    Every SPS of the stream must declare the probed picture (`picture_problem`), and every segment must
    start with an IDR.
    """
    problem = picture_problem(out_dir, ladder)
    if problem is not None:
        return problem
    top = ladder.renditions[0]
    for i in range(len(ladder.grid)):
        if not first_slice_is_idr(out_dir / top.name / SEGMENT_NAME.format(i)):
            return f"segment {i} of the source's stream does not start with a decodable keyframe"
    return None


def picture_problem(out_dir: Path, ladder: Ladder) -> str | None:
    """After `remux`: why the pictures its parameter sets declare forbid a copy, or None.

    A new SPS mid-stream may change the picture size (to more than MEDIAJOBS_MAX_PIXELS: copied, such
    frames would reach players never decoded here); only an encode, decoding and checking every frame, may
    publish such a stream.
    """
    raw = _parameter_sets(out_dir)
    pictures = nal.picture_formats(raw, "h264")
    raw.unlink(missing_ok=True)
    return declared_problem(pictures, ladder)


def declared_problem(pictures: set[Picture] | None, ladder: Ladder) -> str | None:
    """Why a copy of a stream whose SPS declare `pictures` (None: unreadable) is refused, or None."""
    if pictures is None:
        return "the stream's parameter sets cannot be read"
    top = ladder.renditions[0]
    probed = Picture(top.width, top.height, 1, 8, 8)
    other = sorted(str(p) for p in pictures if p != probed)
    if other:
        return f"the picture changes mid-stream ({', '.join(other)} besides {probed})"
    return None


def _parameter_sets(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}-{nal.PARAMETER_SETS}"


def encode(
    src: Path,
    out_dir: Path,
    ladder: Ladder,
    probe: Probe,
    *,
    segments: tuple[int, int] | None = None,
    renditions: Sequence[Rendition] | None = None,
    with_audio: bool = False,
    audio_segments: int = 0,
    threads: int = 0,
    on_progress: FractionCallback | None = None,
) -> None:
    """Encode `renditions` (default: all but a copy) for `segments` [first, stop) of the grid, in one decode.

    `with_audio` also makes the audio rendition in the same process (only for the whole grid);
    `audio_segments`: only its first segments [0, n), exactly as the whole rendition's (`encode_audio`) are.
    """
    grid = ladder.grid
    first, stop = segments or (0, len(grid))
    chosen = list(ladder.encoded if renditions is None else renditions)
    if not chosen and not with_audio and not audio_segments:
        return
    before, after = _span_args(grid, first, stop)
    thread_in, thread_out = thread_args(threads)
    # -xerror: stop at the first picture that cannot be decoded instead of concealing it in every rung.
    args = ["-v", "error", "-xerror", *thread_in, "-copyts", *before]
    args += source_input(src, probe)
    if chosen:
        chains = [f"[0:V:0]split={len(chosen)}" + "".join(f"[s{i}]" for i in range(len(chosen)))]
        for i, r in enumerate(chosen):
            chains.append(f"[s{i}]scale={r.width}:{r.height},setsar=1,format=yuv420p[v{i}]")
        args += ["-filter_complex", ";".join(chains)]
        start, end = grid.span(first, stop)
        chunk_keys = [t for t in ladder.keyframes if start <= t and (end is None or t < end)]
        keys = ",".join(f"{t - EARLY_S:.6f}" for t in chunk_keys)
        gop = str(max(1, round((probe.fps or 30.0) * MAX_SEGMENT_S)))
        for i, r in enumerate(chosen):
            (out_dir / r.name).mkdir(parents=True, exist_ok=True)
            # The encoder keeps the source's time base: the default (1/frame rate) would round every
            # timestamp to a tick of its own, off the grid the cuts and forced keyframes are on.
            args += ["-map", f"[v{i}]", "-c:v", "libx264", "-enc_time_base:v", "-1"]
            args += ["-preset", PRESET, "-profile:v", "high"]
            args += ["-level:v", f"{r.level / 10:.1f}", "-b:v", str(r.video_bitrate)]
            args += ["-maxrate", str(r.maxrate), "-bufsize", str(r.bufsize)]
            args += ["-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-force_key_frames", keys]
            # hlsenc and mp4 ask for constant frame rate, so a timestamp gap would be filled with copies of
            # the last frame; vfr passes frames as they are.
            args += ["-fps_mode", "vfr", *thread_out, *after, *_segment_args(grid, first, stop, r.name)]
    if with_audio or audio_segments:
        args += _audio_args(ladder, probe, out_dir, stop=audio_segments or None)
    elif ladder.audio == "copy":
        # The copied audio is decoded here, span by span, only to find damage the copy would pass on.
        args += ["-map", "0:a:0", *after, "-f", "null", "-"]
    start, end = grid.span(first, stop)
    until = end if end is not None else grid.end
    outputs = len(chosen) + (1 if with_audio or audio_segments else 0)
    with _corrupt_is_unsupported(start, until):
        run_ffmpeg(args, until - start, on_progress, source=probe, outputs=outputs, cwd=out_dir)
    for r in chosen:
        _made_or_damaged(out_dir / r.name, grid, first, stop)
    if audio_segments:
        segment_sizes(out_dir / AUDIO, 0, audio_segments)
        # The segment after them, cut short where the read ended, is not the whole rendition's.
        (out_dir / AUDIO / SEGMENT_NAME.format(audio_segments)).unlink(missing_ok=True)


def verify(src: Path, ladder: Ladder, probe: Probe, *, on_progress: FractionCallback | None = None) -> None:
    """Decode what is copied and no encode reads (UnsupportedMedia where the source is corrupt)."""
    args = ["-v", "error", "-xerror", *source_input(src, probe)]
    if any(r.copy for r in ladder.renditions) and not ladder.encoded:
        args += ["-map", "0:V:0"]
    if ladder.audio == "copy":
        args += ["-map", "0:a:0"]
    if "-map" not in args:
        return
    with _corrupt_is_unsupported(0.0, probe.duration):
        run_ffmpeg([*args, "-f", "null", "-"], probe.duration, on_progress, source=probe)


def encode_audio(
    src: Path,
    out_dir: Path,
    ladder: Ladder,
    probe: Probe,
    *,
    on_segments: Callable[[int], None] | None = None,
    on_progress: FractionCallback | None = None,
) -> None:
    """The audio rendition for the whole grid, in one process: encoded once, or copied when it is AAC.

    `on_segments(n)` as in `remux`: segments [0, n) are written whole.
    """
    args = ["-v", "error", "-xerror", "-copyts", *source_input(src, probe)]
    args += _audio_args(ladder, probe, out_dir)
    n = len(ladder.grid)
    progress = _watching([out_dir / AUDIO], n, on_segments, on_progress)
    with _corrupt_is_unsupported(0.0, ladder.grid.end):
        run_ffmpeg(args, probe.duration, progress, source=probe, cwd=out_dir)
    segment_sizes(out_dir / AUDIO, 0, n)
    if on_segments is not None:
        on_segments(n)


def _watching(
    dirs: Sequence[Path],
    n: int,
    on_segments: Callable[[int], None] | None,
    on_progress: FractionCallback | None,
) -> FractionCallback | None:
    """A progress callback that also tells `on_segments` how many segments of every output are whole."""
    if on_segments is None:
        return on_progress
    opened = dict.fromkeys(dirs, 0)
    report = on_segments

    def progress(fraction: float) -> None:
        for d in dirs:
            while (d / SEGMENT_NAME.format(opened[d])).is_file():
                opened[d] += 1
        # A segment file is whole once the muxer has opened the next one.
        report(min(n, *(count - 1 for count in opened.values())))
        if on_progress is not None:
            on_progress(fraction)

    return progress


@contextlib.contextmanager
def _corrupt_is_unsupported(start: float, end: float) -> Iterator[None]:
    """ffmpeg stopped at a picture or sound it could not decode (`-xerror`): the source is corrupt there.

    Without `-xerror` ffmpeg conceals the damage and carries on, and the rendition would show it.
    """
    try:
        yield
    except ProcessFailed as exc:
        if not plain.DAMAGE.search(str(exc)):
            raise
        plain.unreadable(str(exc), tool="ffmpeg")  # what ffmpeg said goes to the log
        raise _damaged(start, end, "and cannot be decoded") from exc


def _damaged(start: float, end: float, how: str) -> UnsupportedMedia:
    return UnsupportedMedia(
        f"{plain.DAMAGED_AT}: it is corrupt between {start:.1f} and {end:.1f} s {how}; check that it plays, "
        "then upload it again"
    )


def _audio_args(ladder: Ladder, probe: Probe, out_dir: Path, *, stop: int | None = None) -> list[str]:
    """The audio rendition's output: every segment of the grid, or those before segment `stop` (and a
    little past it, so that the encoder's last frames before the cut are what they are in the whole)."""
    grid = ladder.grid
    (out_dir / AUDIO).mkdir(parents=True, exist_ok=True)
    args = ["-map", "0:a:0"]
    if ladder.audio == "copy":
        args += ["-c:a", "copy"]
    else:
        args += ["-c:a", "aac", "-b:a", str(AUDIO_BITRATE)]
        if (probe.audio_channels or 2) > 2:
            args += ["-ac", "2"]
    if stop is not None and stop < len(grid):
        args += ["-to", f"{grid.starts[stop] + AUDIO_LOOKAHEAD_S:.6f}"]
    return [*args, *_segment_args(grid, 0, len(grid), AUDIO)]


def _made_or_damaged(directory: Path, grid: Grid, first: int, stop: int) -> None:
    """After an encode that ended well, a segment it did not make had no picture that decodes: the demuxer
    skipped the damage there without a word, so `-xerror` never stopped it."""
    for i in range(first, stop):
        if _missing(directory, i):
            start, end = grid.span(i, i + 1)
            raise _damaged(start, end if end is not None else grid.end, "(no picture there decodes)")


def segment_sizes(directory: Path, first: int, stop: int) -> list[int]:
    """The byte size of segments [first, stop) in `directory`; UnsupportedMedia when one is missing."""
    sizes = []
    for i in range(first, stop):
        if _missing(directory, i):
            raise UnsupportedMedia(f"ffmpeg produced no segment {i} for {directory.name}")
        sizes.append((directory / SEGMENT_NAME.format(i)).stat().st_size)
    return sizes


def _missing(directory: Path, i: int) -> bool:
    path = directory / SEGMENT_NAME.format(i)
    return not path.is_file() or path.stat().st_size == 0
