"""The first part of an HLS version: planned from the first seconds of the source and published at once.

Nothing a player needs first depends on the end of the file, so a first processing reads only the packets of
the source's first `PREFIX_S` seconds before it publishes anything:

- A standard source (`ladder.standard_reason`) is cut into its copied top rendition and its AAC audio in
  two passes. The first cuts the segments the prefix already fixes (`grid.on_keyframes(complete=False)`),
  and the master is published with that rendition growing (`livehls`: an EVENT playlist of the segments
  stored so far, from the version's stream row). Then the whole stream is indexed and cut front to back,
  each segment stored as soon as the cutter has moved past it; at the end the rendition's playlist is a
  stored VOD playlist and the variant is `ready`. The grid of the whole stream starts with the prefix's
  segments, so nothing published changes.
- A problem only the rest of the stream shows (a long GOP, an index that lies, a segment that does not start
  with an IDR) withdraws what was published, and the source is encoded like any other.
- Any other source is encoded on a fixed grid whose first segment is short (`LEAD_S`). Its lead comes
  first, in one ffmpeg run: the first segment of one rung (`lead_rung`) and of the audio; the master is
  published listing that rung, both growing from the stream row. Everything else follows: the first segment
  of the other rungs (then the master lists them all), the rest in chunks, the audio whole (its segments
  stored as they are made, the first one byte for byte the lead's).

A reprocess (the old version plays until the new one is whole) publishes nothing early, and a standard
source of up to a minute is cut whole before it is published.
"""

from __future__ import annotations

import contextvars
import logging
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from mediajobs.jobs.context import JobContext, Phase
from mediajobs.media import assets, chunks
from mediajobs.media.builds import Build, remove_paths
from mediajobs.toolkit import nal, packets
from mediajobs.toolkit.hls import grid as grids
from mediajobs.toolkit.hls import ladder as ladders
from mediajobs.toolkit.hls import playlists, renditions
from mediajobs.toolkit.hls.ladder import AUDIO, Ladder, Rendition
from mediajobs.toolkit.nal import first_slice_is_idr
from mediajobs.toolkit.packets import VideoIndex
from mediajobs.toolkit.probe import Probe

log = logging.getLogger(__name__)

# A non-standard source's first segment (the lead) is this long: made, and playing, in a second or two.
LEAD_S = 2.0
LEAD_MAX_SIDE = 720
# How much of the source is indexed before the first segments are cut: six or so segments, more than a
# player plays before it first reloads a growing playlist (after its target duration, COPY_TARGET_S).
PREFIX_S = 30.0


class NotCopyable(Exception):
    """The rest of the stream shows the copy cannot play as the source does (the message says why)."""


def new_version() -> str:
    return uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class Lead:
    """What a non-standard source's lead made: the first segment of one rung (`rung`) and of the audio."""

    rung: str
    sizes: dict[str, list[int]]


@dataclass
class Start:
    """How a version began: its build (the ladder of the whole source), the source's index, the sizes of the
    renditions made whole on the way (a copied top rendition and its audio), and the lead, if one ran."""

    build: Build
    index: VideoIndex | None
    made: dict[str, list[int]]
    lead: Lead | None = None


def scan_ahead(pool: ThreadPoolExecutor, src: Path, *, max_pixels: int | None) -> Future[VideoIndex]:
    """The packets of the source's first PREFIX_S seconds, read while the source is probed (whose decodes
    keep to `max_pixels` too)."""
    run = contextvars.copy_context().run  # the job's cancel signal and limits go with it
    return pool.submit(run, packets.scan, src, duration_s=PREFIX_S, max_pixels=max_pixels, until_s=PREFIX_S)


def start(
    ctx: JobContext,
    media_id: str,
    src: Path,
    info: Probe,
    versions: list[str],
    *,
    early: bool,
    ahead: Future[VideoIndex] | None = None,
) -> Start:
    """Plan the version's ladder and make (and, when `early`, publish) what plays first.

    Every version begun is appended to `versions` before anything of it is stored. `ahead`: the prefix
    index `scan_ahead` read meanwhile.
    """
    if not info.has_video:
        return Start(begin(ctx, media_id, ladders.plan(info, None), info, versions), None, {})
    until = packets.prefix_s(info.duration, PREFIX_S) if early else None
    first_s = LEAD_S if early else None
    if until is not None and ahead is not None:
        index = ahead.result()
    else:
        index = packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels, until_s=until)
    complete = until is None
    head = ladders.plan(info, index, complete=complete, first_s=first_s)
    if head.fast_start is None and not complete and len(head.grid):
        build = begin(ctx, media_id, head, info, versions)
        try:
            return _stream_copy(ctx, build, src)
        except NotCopyable as exc:
            log.info("media %s: its stream is not copied after all: %s", media_id, exc)
            withdraw(ctx, build)
            index, complete = packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels), True
            head = ladders.plan_encoded(info, index, str(exc), first_s=first_s)
    if head.fast_start is None:
        build = begin(ctx, media_id, head, info, versions)
        return Start(build, index, _copy_whole(ctx, build, src, index, early=early))
    build = begin(ctx, media_id, head, info, versions)
    lead = None
    if early and head.encoded and len(head.grid) >= (1 if not complete else 2):
        lead = _lead(ctx, build, src)
    if not complete:
        index = packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels)
        whole = ladders.plan_encoded(info, index, head.fast_start, first_s=first_s)
        if not _continues(head, whole):
            raise AssertionError("a fixed grid of the whole stream does not begin as its prefix's")
        build.ladder = whole
    return Start(build, index, {}, lead)


def _continues(head: Ladder, whole: Ladder) -> bool:
    """Whether the whole stream's grid begins with the segments planned on its prefix."""
    k = len(head.grid)
    return whole.grid.starts[:k] == head.grid.starts and (
        k == len(whole.grid) or whole.grid.starts[k] == head.grid.end
    )


def lead_rung(ladder: Ladder) -> Rendition:
    """The rung a non-standard source plays in first: the best encoded one of at most 720p (cheap enough to
    make its first segment in a second or two, sharp enough to start with)."""
    encoded = ladder.encoded
    return next((r for r in encoded if min(r.width, r.height) <= LEAD_MAX_SIDE), encoded[-1])


def _lead(ctx: JobContext, build: Build, src: Path) -> Lead:
    """The first segment of one rung and of the audio, in one ffmpeg run, stored and published."""
    lad, info = build.ladder, build.probe
    rung = lead_rung(lad)
    out = ctx.temp_dir / "lead"
    first = lad.grid.durations()[0]
    renditions.encode(
        src,
        out,
        lad,
        info,
        segments=(0, 1),
        renditions=[rung],
        audio_segments=1 if lad.audio else 0,
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 1, 2, f"Encoding the first {first:.0f} s to play"),
    )
    names = [rung.name, *([AUDIO] if lad.audio else [])]
    sizes = {name: renditions.segment_sizes(out / name, 0, 1) for name in names}
    for name in names:
        segment = f"{name}/{playlists.SEGMENT_NAME.format(0)}"
        build.put_file(segment, out / segment)
    chunks.stream(ctx.db, build.media_id, build.version, [first], sizes, done=False)
    # The master lists the rung that exists; bandwidths are the rungs' caps until all are measured.
    build.put_text(playlists.MASTER, playlists.master(lad, [rung.name]))
    build.publish([])
    shutil.rmtree(out, ignore_errors=True)
    ctx.progress(2, f"Playable in {rung.name}; planning the rest")
    return Lead(rung.name, sizes)


def begin(ctx: JobContext, media_id: str, ladder: Ladder, info: Probe, versions: list[str]) -> Build:
    version = new_version()
    versions.append(version)
    chunks.begin(ctx.db, media_id, version)
    return Build(ctx, media_id, version, ladder, info)


def withdraw(ctx: JobContext, build: Build) -> None:
    """What a version published goes: the asset no longer plays it, its rows and files are removed."""
    assets.update_media(
        ctx.services,
        build.media_id,
        only_from=(assets.PROCESSING,),
        while_running=(ctx.job_id, ctx.attempt),
        hls=None,
        playable_at=None,
    )
    chunks.drop(ctx.db, build.media_id, build.version)
    remove_paths(ctx, [build.path])


class _Cutter:
    """Stores the segments of a stream cut front to back (the source's own video and its AAC audio) as the
    cutter moves past them, lists them in the version's stream row, and publishes them, growing, once the
    first `publish_after` are stored."""

    def __init__(self, ctx: JobContext, build: Build, out: Path, *, publish_after: int | None) -> None:
        lad = build.ladder
        self.ctx, self.build, self.out, self.publish_after = ctx, build, out, publish_after
        self.top = lad.renditions[0].name
        self.names = [self.top, *([AUDIO] if lad.audio == "copy" else [])]
        self.sizes: dict[str, list[int]] = {name: [] for name in self.names}
        self.stored = 0

    def store(self, complete: int) -> None:
        if complete <= self.stored:
            return
        for i in range(self.stored, complete):
            _check_idr(self.out, self.top, i)
            for name in self.names:
                segment = f"{name}/{playlists.SEGMENT_NAME.format(i)}"
                self.sizes[name].append((self.out / segment).stat().st_size)
                self.build.put_file(segment, self.out / segment)
        self.stored = complete
        b = self.build
        durations = b.ladder.grid.durations()[:complete]
        chunks.stream(self.ctx.db, b.media_id, b.version, durations, self.sizes, done=False)
        if self.publish_after is not None and complete >= self.publish_after:
            self.publish_after = None
            # The master and the record measure what is stored so far; the target is the whole grid's.
            lad = upto(b.ladder, complete)
            b.put_text(playlists.MASTER, playlists.master(lad, [self.top], self.sizes))
            b.publish([], self.sizes, ladder=lad)
            self.ctx.progress(1.5, "Playable; cutting the rest of the source into segments")

    def finish(self) -> dict[str, list[int]]:
        """Every segment is stored: VOD playlists, a measured master, the variant ready."""
        b, lad = self.build, self.build.ladder
        for name in self.names:
            b.put_text(playlists.playlist_path(name), playlists.media_playlist_for(lad))
        b.put_text(playlists.MASTER, playlists.master(lad, [self.top], self.sizes))
        b.publish([self.top], self.sizes)
        chunks.stream(self.ctx.db, b.media_id, b.version, lad.grid.durations(), self.sizes, done=True)
        shutil.rmtree(self.out, ignore_errors=True)
        return self.sizes


def upto(ladder: Ladder, n: int) -> Ladder:
    """The ladder as far as its first `n` segments (their grid keeps the whole grid's target duration)."""
    grid = ladder.grid
    end = grid.starts[n] if n < len(grid) else grid.end
    target = grids.target_duration(grid)
    return replace(ladder, grid=replace(grid, starts=grid.starts[:n], end=end, target=target))


def cut_whole(ctx: JobContext, build: Build, src: Path, *, publish_after: int | None) -> dict[str, list[int]]:
    """Cut the source's own stream on the build's (whole, known) grid, storing each segment as it is cut and
    publishing once the first `publish_after` are stored (None: publish nothing early)."""
    lad = build.ladder
    build.ladder = replace(lad, grid=replace(lad.grid, target=grids.target_duration(lad.grid)))
    info = build.probe
    # Segments are stored (and listed) as they are cut: every SPS is checked before any of them is.
    declared = nal.declared_pictures(src, info, "h264", work_dir=ctx.temp_dir)
    problem = renditions.declared_problem(declared, build.ladder)
    if problem is not None:
        raise NotCopyable(problem)
    out = ctx.temp_dir / "stream"
    cutter = _Cutter(ctx, build, out, publish_after=publish_after)
    cutting = Phase(ctx, 1, 3, "Cutting the source into segments")
    renditions.remux(src, out, build.ladder, info, on_segments=cutter.store, on_progress=cutting)
    problem = renditions.picture_problem(out, build.ladder)
    if problem is not None:
        raise NotCopyable(problem)
    return cutter.finish()


def _stream_copy(ctx: JobContext, build: Build, src: Path) -> Start:
    """Cut and publish the prefix's segments, then cut the whole stream, storing each segment as it is cut."""
    info, head = build.probe, build.ladder
    build.ladder = replace(head, grid=replace(head.grid, target=grids.COPY_TARGET_S))
    out = ctx.temp_dir / "stream"
    renditions.remux(src, out, build.ladder, info, prefix=True)
    problem = renditions.picture_problem(out, build.ladder)
    if problem is not None:
        raise NotCopyable(problem)
    cutter = _Cutter(ctx, build, out, publish_after=len(head.grid))
    cutter.store(len(head.grid))

    index = packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels)
    whole = ladders.plan(info, index)
    if whole.fast_start is not None:
        raise NotCopyable(whole.fast_start)
    # Segments are stored (and listed) as they are cut: every SPS is checked before any of them is.
    problem = renditions.declared_problem(
        nal.declared_pictures(src, info, "h264", work_dir=ctx.temp_dir), whole
    )
    if problem is not None:
        raise NotCopyable(problem)
    whole = replace(whole, grid=replace(whole.grid, target=grids.COPY_TARGET_S))
    if not _continues(build.ladder, whole):
        raise NotCopyable("the segments of the whole stream do not continue those already published")
    build.ladder = whole
    shutil.rmtree(out, ignore_errors=True)
    cutting = Phase(ctx, 1.5, 3, "Cutting the source into segments")
    renditions.remux(src, out, whole, info, on_segments=cutter.store, on_progress=cutting)
    problem = renditions.picture_problem(out, whole)  # the very SPS the pass above read
    if problem is not None:
        raise NotCopyable(problem)
    return Start(build, index, cutter.finish())


def _check_idr(out: Path, name: str, i: int) -> None:
    if not first_slice_is_idr(out / name / playlists.SEGMENT_NAME.format(i)):
        raise NotCopyable(f"segment {i} of the source's stream does not start with a decodable keyframe")


def _copy_whole(
    ctx: JobContext, build: Build, src: Path, index: VideoIndex, *, early: bool
) -> dict[str, list[int]]:
    """Cut the source's own stream into the top rendition in one pass and publish it (`early`); {} when it
    cannot be copied (the build's ladder is then all encoded)."""
    lad, out = build.ladder, ctx.temp_dir / "remux"
    renditions.remux(
        src, out, lad, build.probe, on_progress=Phase(ctx, 1, 3, "Cutting the source into segments")
    )
    problem = renditions.copy_is_exact(out, lad)
    if problem is not None:
        log.info("media %s: its stream is not copied: %s", build.media_id, problem)
        build.ladder = ladders.plan_encoded(build.probe, index, problem)
        shutil.rmtree(out, ignore_errors=True)
        return {}
    top = lad.renditions[0]
    n = len(lad.grid)
    sizes = {top.name: renditions.segment_sizes(out / top.name, 0, n)}
    if lad.audio == "copy":
        sizes[AUDIO] = renditions.segment_sizes(out / AUDIO, 0, n)
    for name in sizes:
        (out / playlists.playlist_path(name)).write_text(playlists.media_playlist_for(lad))
    (out / playlists.MASTER).write_text(playlists.master(lad, [top.name], sizes))
    ctx.progress(3, "Storing the first rendition")
    build.upload(out)
    shutil.rmtree(out, ignore_errors=True)
    chunks.stream(ctx.db, build.media_id, build.version, lad.grid.durations(), sizes, done=True)
    if early:
        build.publish([top.name], sizes)
    return sizes
