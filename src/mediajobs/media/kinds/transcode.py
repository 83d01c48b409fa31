"""media.process: an asset's HLS ladder and thumbnail, playable early, made on every cpu worker at once.

1. Fetch, probe and read the source's packets; plan the ladder (`toolkit/hls/ladder`) and store the plan
   (build.json beside the version's files) for the jobs that work on it elsewhere.
2. A standard source's own stream is cut into the top rendition (`renditions.remux`) and published at once:
   the master plays, from the start and after any seek, seconds after the job starts (first processing only;
   a reprocess keeps serving the old version until the new one is whole).
3. The other renditions: for a source longer than MEDIAJOBS_CHUNK_THRESHOLD_S, one child job per chunk of
   segments (`media.transcode_chunk`, cpu queue) and one for the audio, joined by `media.finish_ladder`;
   otherwise here, chunk by chunk. Without a copied top rendition the asset becomes playable when the first
   (short) chunk and the audio are stored: its renditions' playlists grow (`media.chunks`) until the end.
4. The join writes every playlist and the master with measured bandwidths, then the asset is ready.
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from mediajobs.errors import JobCancelled, MediajobsError, PermanentError
from mediajobs.jobs.context import JobContext, Phase
from mediajobs.jobs.registry import job_kind
from mediajobs.media import assets, builds, chunks, faststart, inplace
from mediajobs.media.builds import abandon_builds, media_ended, removed_if_taken_over
from mediajobs.media.kinds import HOUR
from mediajobs.media.operations import ProcessParams
from mediajobs.media.originals import fetch_original, probe_source, require_media
from mediajobs.storage import for_process
from mediajobs.toolkit import packets
from mediajobs.toolkit.hls import grid as grids
from mediajobs.toolkit.hls import ladder as ladders
from mediajobs.toolkit.hls import playlists, renditions
from mediajobs.toolkit.hls.ladder import AUDIO
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.thumbnail import pick_thumbnail

log = logging.getLogger(__name__)


class ChunkParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    index: int


@job_kind(
    "media.process",
    params=ProcessParams,
    queue="cpu",
    soft_time_limit_s=6 * HOUR,
    public=False,
    on_end=media_ended,
)
def process_media(ctx: JobContext, params: ProcessParams) -> Any:
    """Probe the original, build the HLS ladder and the thumbnail, then swap them in."""
    media = require_media(ctx)
    if not params.reprocess:
        assets.update_media(
            ctx.services, media.id, only_from=(assets.PENDING, assets.PROCESSING), state=assets.PROCESSING
        )
    src = fetch_original(ctx, media)
    ctx.progress(1, "Probing")
    early = not params.reprocess
    with ThreadPoolExecutor(max_workers=1) as pool:
        # What plays first needs the first seconds' packets only: read them while the source is probed.
        ahead = (
            faststart.scan_ahead(pool, src, max_pixels=ctx.settings.max_pixels)
            if early and "hls" in params.pipeline
            else None
        )
        try:
            info = probe_source(ctx, src)
        finally:
            if ahead is not None:
                wait([ahead])
        return _process(ctx, params, media, src, info, ahead)


def _process(
    ctx: JobContext,
    params: ProcessParams,
    media: Any,
    src: Path,
    info: Probe,
    ahead: Future[packets.VideoIndex] | None,
) -> Any:
    early = not params.reprocess
    thumb = builds.Thumb(media.thumbnail, None, None)
    # A poster someone chose stays: the original is the same, so is the frame they chose.
    chosen = bool(media.thumbnail and (media.poster or {}).get("chosen"))
    auto_thumbnail = "thumbnail" in params.pipeline and not chosen
    if "hls" not in params.pipeline:
        if auto_thumbnail:
            thumb = _thumbnail(ctx, media.id, src, info, faststart.new_version())
        return builds.finish(ctx, media.id, info, media.hls, thumb, pipeline=params.pipeline)
    # Versions an earlier attempt left unfinished (its worker died) are removed.
    abandon_builds(ctx.services, media.id)
    versions: list[str] = []
    with removed_if_taken_over(ctx, versions):
        note: dict[str, Any] | None = None
        if params.from_parent is not None and early:
            found = inplace.plan(ctx, media, src, info, params.from_parent)
            if isinstance(found, inplace.Plan):
                try:
                    return _from_parent(ctx, params, media, src, info, found, versions, thumb, auto_thumbnail)
                except inplace.Abandoned as exc:
                    found = str(exc)
            log.info("media %s: its ladder is built in full: %s", media.id, found)
            note = {"built": "full", "reason": found}
        # A source without video has no packets for the look-ahead to find: that is no error here.
        ahead = ahead if ahead is not None and info.has_video and ahead.exception() is None else None
        begun = faststart.start(ctx, media.id, src, info, versions, early=early, ahead=ahead)
        build, index = begun.build, begun.index
        # After a lead: the first segment of every other rung, so the master can list them all.
        first = _lead_rest(ctx, build, src, begun.lead) if begun.lead else None
        if auto_thumbnail:
            first_pts = index.start if index else None
            thumb = _thumbnail(ctx, media.id, src, info, build.version, first_pts=first_pts)
            if early and media.thumbnail is None:
                _show_thumbnail(ctx, media.id, thumb)
        build.save(copied=begun.made, from_parent=note, **thumb.saved())
        lad = build.ladder
        ctx.progress(builds.OWN_UNTIL, "Planning the encodes")
        if info.duration > ctx.settings.chunk_threshold_s and lad.encoded:
            return _fan_out(ctx, build, early=early, first=first)
        sizes = {**begun.made, **_encode_here(ctx, build, src, early=early, first=first)}
        result = builds.join(ctx, build, sizes, thumb, pipeline=params.pipeline)
        return {**result, "from_parent": note} if note else result


def _from_parent(
    ctx: JobContext,
    params: ProcessParams,
    media: Any,
    src: Path,
    info: Probe,
    found: inplace.Plan,
    versions: list[str],
    thumb: builds.Thumb,
    auto_thumbnail: bool,
) -> dict[str, Any]:
    """A derived asset's ladder from its parent's (`media.inplace`): segments copied where the edit left them
    alone, encoded elsewhere, in this job (there is little to encode)."""
    build = faststart.begin(ctx, media.id, found.ladder, info, versions)
    thumbs = [thumb]

    def on_top() -> None:
        if auto_thumbnail:
            thumbs[0] = _thumbnail(ctx, media.id, src, info, build.version, first_pts=found.index.start)
            if media.thumbnail is None:
                _show_thumbnail(ctx, media.id, thumbs[0])

    try:
        made = inplace.build(ctx, build, src, found, on_top)
    except faststart.NotCopyable as exc:
        faststart.withdraw(ctx, build)
        raise inplace.Abandoned(f"the derived stream cannot be copied as it is: {exc}") from exc
    result = builds.join(ctx, build, made.sizes, thumbs[0], pipeline=params.pipeline)
    return {**result, "from_parent": made.public()}


def _lead_rest(ctx: JobContext, build: builds.Build, src: Path, lead: faststart.Lead) -> dict[str, list[int]]:
    """Segment 0 of the rungs the lead did not make, stored; the sizes of segment 0 of every rung."""
    lad, out = build.ladder, ctx.temp_dir / "first"
    others = [r for r in lad.encoded if r.name != lead.rung]
    if not others:  # a ladder of one rung (a small source): the lead made all there is
        return {lead.rung: lead.sizes[lead.rung]}
    renditions.encode(
        src,
        out,
        lad,
        build.probe,
        segments=(0, 1),
        renditions=others,
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 2, 3, "Encoding the first segment of the other rungs"),
    )
    made = {r.name: renditions.segment_sizes(out / r.name, 0, 1) for r in others}
    build.upload(out, consume=True)
    shutil.rmtree(out, ignore_errors=True)
    return {lead.rung: lead.sizes[lead.rung], **made}


def _plan_rows(
    ctx: JobContext,
    build: builds.Build,
    spans: list[tuple[int, int]],
    *,
    audio: bool,
    growing: bool,
    first: dict[str, list[int]] | None,
) -> None:
    """The version's chunk rows; with a `first` chunk already made (after a lead) it is done at once, and
    the renditions it holds grow from the rows from now on. A growing master lists every rung."""
    lad = build.ladder
    chunks.plan(ctx.db, build.media_id, build.version, spans, lad.grid.durations(), audio=audio)
    if first is not None:
        chunks.mark_done(ctx.db, build.media_id, build.version, 0, first)
        # The stream row keeps only the sound (the audio encode extends it), or is done.
        row = chunks.get(ctx.db, build.media_id, build.version, chunks.STREAM_ROW)
        sound = {k: v for k, v in ((row.sizes or {}) if row else {}).items() if k == AUDIO}
        durations = row.durations if row and sound else []
        chunks.stream(ctx.db, build.media_id, build.version, durations, sound, done=not sound)
    if growing:
        build.put_text(playlists.MASTER, playlists.master(lad, lad.names))


def _fan_out(ctx: JobContext, build: builds.Build, *, early: bool, first: dict[str, list[int]] | None) -> Any:
    """One child job per chunk (and one for the audio), on every cpu worker; the join ends the ladder."""
    lad = build.ladder
    growing = early and lad.fast_start is not None
    # Chunks of half the threshold: a source just over it makes two, a long one many, and each chunk's
    # start-up (fetching the original, seeking to its start) stays small beside its encode.
    spans = grids.chunks(lad.grid, ctx.settings.chunk_threshold_s / 2, short_first=growing)
    audio_apart = lad.audio_apart
    _plan_rows(ctx, build, spans, audio=audio_apart, growing=growing, first=first)
    children: list[tuple[str, dict[str, Any], float]] = []
    if audio_apart:
        children.append(
            (
                "media.transcode_chunk",
                {"version": build.version, "index": chunks.AUDIO_ROW},
                builds.audio_cost(lad),
            )
        )
    for i, span in enumerate(spans):
        if i == 0 and first is not None:
            continue
        weight = ladders.cost(lad, builds.seconds(lad, span))
        children.append(("media.transcode_chunk", {"version": build.version, "index": i}, weight))
    return ctx.fan_out(children, then="media.finish_ladder", span=(builds.OWN_UNTIL, builds.CHUNKS_UNTIL))


def _encode_here(
    ctx: JobContext,
    build: builds.Build,
    src: Path,
    *,
    early: bool,
    first: dict[str, list[int]] | None,
) -> dict[str, list[int]]:
    """The renditions still to make, in this job: a short first chunk first when nothing plays yet."""
    lad, out = build.ladder, ctx.temp_dir / "encode"
    n = len(lad.grid)
    if not lad.encoded and not lad.audio_apart:
        # The copied top rendition is the whole ladder: decode it once, for damage the copy passed on.
        stage = "Checking the source decodes"
        renditions.verify(
            src, lad, build.probe, on_progress=Phase(ctx, builds.OWN_UNTIL, builds.JOIN_FROM, stage)
        )
        return {}
    growing = early and lad.fast_start is not None and bool(lad.encoded) and n > 1
    spans = [(0, 1), (1, n)] if growing else [(0, n)]
    audio_apart = lad.audio_apart
    todo = spans[1:] if first is not None else spans
    total = sum(ladders.cost(lad, builds.seconds(lad, s)) for s in todo) + (
        builds.audio_cost(lad) if audio_apart else 0
    )
    total = max(total, 1e-9)
    done = 0.0
    scale = builds.JOIN_FROM - builds.OWN_UNTIL
    sizes: dict[str, list[int]] = {name: list(values) for name, values in (first or {}).items()}
    _plan_rows(ctx, build, spans, audio=False, growing=growing, first=first)
    threads = ctx.settings.effective_ffmpeg_threads
    if audio_apart:
        share = builds.audio_cost(lad) / total * scale
        phase = Phase(ctx, builds.OWN_UNTIL, builds.OWN_UNTIL + share, "Encoding the audio")
        sizes[AUDIO] = builds.make_audio(ctx, build, src, out, phase)
        done += share
    for i, span in enumerate(spans):
        if i == 0 and first is not None:
            continue
        share = ladders.cost(lad, builds.seconds(lad, span)) / total * scale
        start = builds.OWN_UNTIL + done
        names = ", ".join(r.name for r in lad.encoded)
        renditions.encode(
            src,
            out,
            lad,
            build.probe,
            segments=span,
            threads=threads,
            on_progress=Phase(ctx, start, start + share, f"Transcoding to HLS ({names})"),
        )
        done += share
        made = {r.name: renditions.segment_sizes(out / r.name, *span) for r in lad.encoded}
        for name, values in made.items():
            sizes.setdefault(name, []).extend(values)
        if growing:
            build.upload(out, consume=True)
            chunks.mark_done(ctx.db, build.media_id, build.version, i, made)
            if i == 0:
                build.publish([])
    if not growing:
        ctx.progress(builds.JOIN_FROM, "Storing the renditions")
        build.upload(out, consume=True)
    return sizes


@job_kind("media.transcode_chunk", params=ChunkParams, queue="cpu", soft_time_limit_s=2 * HOUR, public=False)
def transcode_chunk(ctx: JobContext, params: ChunkParams) -> dict[str, Any]:
    """One chunk of segments of every encoded rendition (or, index -1, the whole audio rendition)."""
    media = require_media(ctx)
    row = chunks.get(ctx.db, media.id, params.version, params.index)
    if row is None:
        # Its version was abandoned before this chunk started (a sibling failed, the asset was deleted or
        # processed again): nothing is left to do, and nothing went wrong with this chunk.
        raise JobCancelled(f"version {params.version} was abandoned before chunk {params.index} started")
    build, data = builds.Build.load(ctx, media.id, params.version)
    lad = build.ladder
    src = fetch_original(ctx, media)
    out = ctx.temp_dir / "chunk"
    if params.index == chunks.AUDIO_ROW:
        sizes = {AUDIO: builds.make_audio(ctx, build, src, out, Phase(ctx, 1, 99, "Encoding the audio"))}
    else:
        span = (row.first_segment, row.first_segment + len(row.durations))
        start, end = lad.grid.span(*span)
        until = end if end is not None else lad.grid.end
        stage = f"Transcoding segments {span[0]}-{span[1] - 1} ({start:.0f}-{until:.0f} s)"
        renditions.encode(
            src,
            out,
            lad,
            build.probe,
            segments=span,
            threads=ctx.settings.effective_ffmpeg_threads,
            on_progress=Phase(ctx, 1, 99, stage),
        )
        sizes = {r.name: renditions.segment_sizes(out / r.name, *span) for r in lad.encoded}
        ctx.progress(99, "Storing the segments")
        build.upload(out, consume=True)
    ctx.check_cancelled()
    current = chunks.mark_done(ctx.db, media.id, params.version, params.index, sizes)
    if current and not data.get("copied") and chunks.playable(chunks.rows(ctx.db, media.id, params.version)):
        build.publish([])
    return {"version": params.version, "index": params.index}


@job_kind(
    "media.finish_ladder",
    params=ProcessParams,
    queue="cpu",
    soft_time_limit_s=HOUR,
    public=False,
    on_end=media_ended,
)
def finish_ladder(ctx: JobContext, params: ProcessParams) -> dict[str, Any]:
    """The join: every chunk is stored; write the playlists and the master, and the asset is ready."""
    require_media(ctx)
    version = next(r["version"] for r in ctx.child_results() if r)
    assert ctx.media_id is not None
    build, data = builds.Build.load(ctx, ctx.media_id, version)
    sizes = {**(data.get("copied") or {}), **chunks.sizes(chunks.rows(ctx.db, ctx.media_id, version))}
    result = builds.join(ctx, build, sizes, builds.Thumb.loaded(data), pipeline=params.pipeline)
    note = data.get("from_parent")
    return {**result, "from_parent": note} if note else result


def _show_thumbnail(ctx: JobContext, media_id: str, thumb: builds.Thumb) -> None:
    """A first processing shows its thumbnail as soon as it is stored, not when the ladder is done (the swap
    at the end then finds it in place; a retried attempt's own waits for the swap, which removes the old)."""
    if thumb.path is None:
        return
    assets.update_media(
        ctx.services,
        media_id,
        only_from=(assets.PROCESSING,),
        while_running=(ctx.job_id, ctx.attempt),
        thumbnail=thumb.path,
        poster={"time": thumb.time_s, "chosen": False} if thumb.time_s is not None else None,
    )


def _thumbnail(
    ctx: JobContext, media_id: str, src: Path, info: Probe, version: str, *, first_pts: float | None = None
) -> builds.Thumb:
    """A thumbnail and the time it shows, or the reason there is none (only a frame over the limit fails)."""
    ctx.stage("Making the thumbnail")
    try:
        if not info.has_video:
            raise PermanentError("the source has no video stream", code="no_video")
        local, shown_s = pick_thumbnail(src, ctx.temp_dir / "thumbnail.jpg", info, first_pts=first_pts)
        path = f"thumbnail/{version}.jpg"
        for_process(ctx.settings).put_file(
            f"{assets.prefix(media_id)}{path}", local, content_type="image/jpeg", consume=True
        )
        return builds.Thumb(path, None, shown_s)
    except MediajobsError as exc:
        if exc.code in ("cancelled", "too_large"):
            raise  # a frame over MEDIAJOBS_MAX_PIXELS refuses the source, not only its thumbnail
        log.info("no thumbnail for %s: %s", media_id, exc)
        return builds.Thumb(None, {"code": exc.code, "message": str(exc)}, None)
