"""Smart rendering: frame removal and masking that re-encode only the GOPs they change and copy the rest.

`smart_cut` and `smart_mask` index the source's GOPs (`gops`), plan copy and encode spans (`plan`),
render each span to a piece and join the pieces with the sound (`pieces`). Sound is never spliced: a cut
encodes it once from the source, trimmed at the same frame times as the picture; a mask copies it, or
encodes it once, edited (`sound`). A mask that changes only the sound copies every picture. A source
the procedure cannot reproduce exactly takes today's full re-encode (`cut.remove_frames`,
`mask.apply_mask`), and the report says which path ran and why.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import math
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediajobs import process
from mediajobs.errors import ProcessFailed, UnsupportedMedia
from mediajobs.toolkit import cut, mask, nal
from mediajobs.toolkit.ffmpeg import MP4_SUFFIXES, faststart_args, run_ffmpeg, source_input, thread_args
from mediajobs.toolkit.hls.reuse import Edit
from mediajobs.toolkit.packets import VideoIndex
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.smart.gops import MAX_GOP_S, InexactSource, Starts, copy_starts, read_index
from mediajobs.toolkit.smart.pieces import (
    Piece,
    concat_input,
    concat_list,
    copy_args,
    count_frames,
    encode_args,
    encoder_reason,
    piece_reorder,
    retime_bsf,
)
from mediajobs.toolkit.smart.plan import Span, kept_seconds, masked_frames, plan, removed_frames
from mediajobs.toolkit.smart.work import Monotonic, Work
from mediajobs.toolkit.sound import KEEP, Sound, copy_pictures, output_args

log = logging.getLogger(__name__)

SMART_CRF = 16  # re-encoded GOPs sit between copied ones: a notch better than a full render's crf 18
# The sound of a cut is encoded whole, and AAC's default two-loop coder would take longer than all the
# video work (32 CPU s for 10 minutes, against 13 s for the fast coder; at 192 kbit/s both are transparent).
AUDIO_CODEC = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "192k"]
# A sound encoded apart from the pictures, then copied into the join (Matroska keeps the encoder's delay).
SOUND = "sound.m4a"


@dataclass(frozen=True)
class RenderReport:
    """Which path rendered the output, and how many of its seconds were re-encoded or copied."""

    render: str
    reencoded_s: float
    copied_s: float
    reason: str | None = None
    # Which of the source's frames the output shows, in order, and which it changed (a smart render's):
    # what a derived ladder needs to reuse its parent's (`hls.reuse`).
    edit: Edit | None = None

    def public(self) -> dict[str, Any]:
        """The fields an operation job adds to its result."""
        result: dict[str, Any] = {
            "render": self.render,
            "reencoded_s": round(self.reencoded_s, 3),
            "copied_s": round(self.copied_s, 3),
        }
        if self.reason is not None:
            result["reason"] = self.reason
        return result


def smart_cut(
    src: str | Path,
    dst: str | Path,
    probe: Probe,
    ranges: Sequence[cut.Range],
    *,
    threads: int = 0,
    crf: int = SMART_CRF,
    preset: str = "veryfast",
    max_gop_s: float = MAX_GOP_S,
    on_progress: Callable[[float], None] | None = None,
) -> RenderReport:
    """Write `src` without the frames inside `ranges` to `dst`, re-encoding only the GOPs cut into."""
    src, dst = Path(src), Path(dst)
    # Bad ranges fail here exactly as on the full path, before any work.
    cut.merge_ranges(ranges, probe.duration, fps=probe.fps if probe.has_video else None)
    progress = Monotonic(on_progress) if on_progress is not None else None
    try:
        index, starts = _source(src, dst, probe, max_gop_s)
        # Frame times from the stream's exact rate: a rounded probe fps drifts by a frame over minutes.
        removed = cut.merge_ranges(ranges, probe.duration, fps=float(index.fps))
        spans = plan(index, starts=starts.all, removed=removed_frames(index, removed))
        sound: list[str] = []
        if probe.has_audio:
            # The sound is encoded once, cut at the very frame times the picture is cut at.
            audio = dataclasses.replace(probe, video_codec=None)
            graph, _ = cut.build_cut_filter(kept_seconds(index, spans, probe.duration), probe.duration, audio)
            sound = ["-filter_complex", graph, "-map", "[a]", *AUDIO_CODEC]
        video = "[span]setpts=PTS-STARTPTS[v]"
        report = _render(src, dst, probe, index, spans, starts, video, sound, 0.0, sound_apart=True,
                         threads=threads, crf=crf, preset=preset, progress=progress)  # fmt: skip
        edit = Edit.of(index.fps, index.count, removed=removed_frames(index, removed))
        return dataclasses.replace(report, edit=edit)
    except (InexactSource, ProcessFailed) as exc:
        reason = _fallback(src, exc)
    rest = progress.rest() if progress is not None else None
    cut.remove_frames(src, dst, probe, ranges, threads=threads, on_progress=rest)
    removed = cut.merge_ranges(ranges, probe.duration, fps=probe.fps if probe.has_video else None)
    return RenderReport("full", cut.output_duration(removed, probe.duration), 0.0, reason)


def smart_mask(
    src: str | Path,
    dst: str | Path,
    probe: Probe,
    regions: Sequence[mask.Region],
    *,
    threads: int = 0,
    crf: int = SMART_CRF,
    preset: str = "veryfast",
    max_gop_s: float = MAX_GOP_S,
    sound: Sound = KEEP,
    on_progress: Callable[[float], None] | None = None,
) -> RenderReport:
    """Write `src` with `regions` masked and its `sound` edited to `dst`, re-encoding only the GOPs a region
    shows in (none when only the sound changes)."""
    src, dst = Path(src), Path(dst)
    for i, r in enumerate(regions):
        if not all(math.isfinite(t) for t in (r.start, 0.0 if r.end is None else r.end)):
            raise mask.InvalidRegion(f"regions[{i}] must have a finite start and end (or end: null)")
    clipped, sound = mask.checked(regions, sound, probe)
    if not clipped:
        if not probe.has_video:
            mask.apply_mask(src, dst, probe, regions, sound=sound, on_progress=on_progress)
            return RenderReport("full", probe.duration, 0.0, "there is no video stream")
        if copy_pictures(src, dst, probe, sound, on_progress=on_progress):
            return RenderReport("smart", 0.0, probe.duration)
        reason = f"{probe.video_codec} video cannot be copied without the data it carries beside pictures"
        mask.apply_mask(src, dst, probe, regions, sound=sound, threads=threads, on_progress=on_progress)
        return RenderReport("full", probe.duration, 0.0, reason)
    if not probe.has_video or probe.width is None or probe.height is None:
        raise UnsupportedMedia("masking needs a video stream")
    progress = Monotonic(on_progress) if on_progress is not None else None
    try:
        index, starts = _source(src, dst, probe, max_gop_s)
        spans = plan(index, starts=starts.all, changed=masked_frames(index, clipped))
        pixels = mask.build_mask_filter(clipped, probe.width, probe.height).replace("[0:v:0]", "[span]", 1)
        video = f"{pixels};[vout]setpts=PTS-STARTPTS,format={index.stream.pix_fmt}[v]"
        edited = output_args(sound, probe, dst)
        report = _render(src, dst, probe, index, spans, starts, video, edited, index.time_s(0),
                         threads=threads, crf=crf, preset=preset, progress=progress)  # fmt: skip
        edit = Edit.of(index.fps, index.count, changed=masked_frames(index, clipped))
        return dataclasses.replace(report, edit=edit)
    except (InexactSource, ProcessFailed) as exc:
        reason = _fallback(src, exc)
    rest = progress.rest() if progress is not None else None
    mask.apply_mask(src, dst, probe, regions, sound=sound, threads=threads, on_progress=rest)
    return RenderReport("full", probe.duration, 0.0, reason)


def _source(src: Path, dst: Path, probe: Probe, max_gop_s: float) -> tuple[VideoIndex, Starts]:
    """The source's packet index and where copies may start; InexactSource when it cannot be exact."""
    if dst.suffix.lower() not in MP4_SUFFIXES:
        # The join's timestamps are counted in the mp4 muxer's time base (see pieces.retime_bsf).
        raise InexactSource(f"smart rendering writes MP4, not {dst.suffix or 'a file without a suffix'}")
    if not probe.has_video:
        raise InexactSource("there is no video stream")
    if probe.rotation:
        raise InexactSource(f"the video is shown rotated by {probe.rotation} degrees")
    index = read_index(src, probe, max_gop_s=max_gop_s)
    reason = encoder_reason(index.stream)
    if reason is not None:
        raise InexactSource(reason)
    return index, copy_starts(src, index, probe, work_dir=dst.parent)


def _fallback(src: Path, exc: Exception) -> str:
    """The reason a render takes the full path; a failure of the smart path itself is logged loudly."""
    if isinstance(exc, InexactSource):
        log.info("%s is re-encoded in full: %s", src.name, exc)
        return str(exc)
    log.warning("the smart render of %s failed, re-encoding in full: %s", src.name, exc)
    return f"the smart render failed: {exc}"


def _render(
    src: Path,
    dst: Path,
    probe: Probe,
    index: VideoIndex,
    spans: Sequence[Span],
    starts: Starts,
    video: str,
    sound: Sequence[str],
    offset_s: float,
    *,
    threads: int,
    crf: int,
    preset: str,
    progress: Monotonic | None,
    sound_apart: bool = False,
) -> RenderReport:
    """Render `spans` to pieces (re-encoding through the `video` graph), join them with `sound` to `dst`.

    `sound_apart`: the `sound` options encode it (from input 0, the source), and that encode runs on its own
    from the start, beside the pictures' copy and encodes, rather than in the join after them. A cut's sound
    is encoded whole: 10 minutes of AAC took 13 s of one core, most of a removal's render, while the other
    core copied pictures.
    """
    fps = float(index.fps)
    copied = sum(s.frames for s in spans if s.copy)
    encoded = sum(s.frames for s in spans if not s.copy)
    if not copied:
        raise InexactSource(
            "every GOP holds a change or follows one at a keyframe a decoder cannot start afresh at (an open "
            "GOP's I-frame, not an IDR): there is nothing to copy exactly"
        )
    work = Work(index, spans, audio_s=(copied + encoded) / fps if probe.has_audio else 0.0)
    before, after = thread_args(threads)
    bound = probe.max_pixels
    # Pieces live next to `dst` (one file system: the result moves into place) and go with any failure.
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".smart-", dir=dst.parent)))
        sounding: Future[object] | None = None
        if sound_apart and sound:
            alone = [*source_input(src, probe), *sound, str(directory / SOUND)]
            sounding = stack.enter_context(
                _beside(lambda: run_ffmpeg(alone, probe.duration, None, source=probe))
            )
        copies = [s for s in spans if s.copy]
        # One pass copies every copy span, one piece each; then one run per re-encoded span.
        args = copy_args(src, index, copies, directory / "copy%04d.ts", max_pixels=bound)
        run_ffmpeg(args, probe.duration, work.step(0, progress), source=probe)
        pieces, copy_no, reorder = [], 0, index.reorder
        for n, span in enumerate(spans):
            if span.copy:
                piece = Piece(directory / f"copy{copy_no:04d}.ts", span.frames)
                copy_no += 1
                first_gop = index.gop_of(span.first)
                if first_gop in starts.splice and not nal.splice_at_cra(piece.path):
                    raise InexactSource(f"the copy from frame {span.first} does not start with a CRA picture")
                pieces.append(piece)
                continue
            piece = Piece(directory / f"piece{n:04d}.ts", span.frames)
            args = encode_args(src, index, span.first, span.end, piece.path, graph=video, crf=crf,
                               preset=preset, max_pixels=bound, before=before, after=after)  # fmt: skip
            run_ffmpeg(args, span.frames / fps, work.step(n + 1, progress), source=probe)
            reorder = max(reorder, piece_reorder(piece, max_pixels=bound))
            pieces.append(piece)
        joined = directory / f"joined{dst.suffix}"
        sound_input: list[str] = []
        if sounding is not None:
            sounding.result()  # its failure (or the job's cancel) raises here
            sound_input, sound = ["-i", str(directory / SOUND)], ["-map", "2:a:0", "-c:a", "copy"]
        args = [
            *before, *source_input(src, probe),
            *concat_input(concat_list(pieces, fps, directory)), *sound_input,
            "-map", "1:v:0", "-c:v", "copy", "-bsf:v", retime_bsf(fps, reorder, offset_s),
            *(["-tag:v", "hvc1"] if index.stream.tag == "hvc1" else []),
            *sound, *after, *faststart_args(joined), str(joined),
        ]  # fmt: skip
        run_ffmpeg(args, (copied + encoded) / fps, work.step(len(spans) + 1, progress), source=probe)
        shown = count_frames(joined, max_pixels=bound)
        if shown != copied + encoded:
            raise InexactSource(f"the joined stream shows {shown} frames instead of {copied + encoded}")
        joined.replace(dst)
    return RenderReport("smart", reencoded_s=encoded / fps, copied_s=copied / fps)


class _Either:
    """Set when either signal is."""

    def __init__(self, first: process.CancelSignal | None, second: threading.Event) -> None:
        self.first, self.second = first, second

    def is_set(self) -> bool:
        return self.second.is_set() or (self.first is not None and self.first.is_set())


@contextlib.contextmanager
def _beside(work: Callable[[], object]) -> Iterator[Future[object]]:
    """Run `work` (its subprocesses) in a thread of its own while the block runs, under the job's cancel
    signal, limits and jail; a block that ends early (an error, a cancel) stops it and waits for it."""
    stop = threading.Event()
    context = contextvars.copy_context()

    def run() -> object:
        process.current_cancel.set(_Either(process.current_cancel.get(), stop))
        return work()

    with ThreadPoolExecutor(1, thread_name_prefix="smart-sound") as pool:
        future = pool.submit(context.run, run)
        try:
            yield future
        finally:
            stop.set()
