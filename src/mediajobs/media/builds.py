"""An HLS version being made: where its files go, its plan (build.json), publishing it, swapping it in.

The plan (ladder, probe, what the first job already made) is stored beside the version's files so that chunk
jobs on any host and the join read the same one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mediajobs.db.models import Job
from mediajobs.errors import JobCancelled
from mediajobs.jobs import lifecycle, states
from mediajobs.jobs.context import JobContext, Phase
from mediajobs.jobs.hooks import Services
from mediajobs.media import assets, chunks, outputs
from mediajobs.media.originals import require_media
from mediajobs.storage import content_type_for, for_process
from mediajobs.toolkit.hls import grid as grids
from mediajobs.toolkit.hls import ladder as ladders
from mediajobs.toolkit.hls import playlists, renditions
from mediajobs.toolkit.hls.ladder import AUDIO, Ladder
from mediajobs.toolkit.probe import Probe

log = logging.getLogger(__name__)
BUILD = "build.json"
LADDER = "ladder.json"
# The first job's own steps (fetch, probe, remux, thumbnail) end here; the join starts there.
OWN_UNTIL, JOIN_FROM = 4.0, 97.0
# A chunked ladder's children end at this point of its scale: its join only writes the playlists (the
# segments are stored by the chunks), and the time a waiting parent shows as left counts the join's share at
# the children's pace.
CHUNKS_UNTIL = 99.0


class Build:
    """One HLS version being made: its ladder, where it is stored, what the asset had before it."""

    def __init__(self, ctx: JobContext, media_id: str, version: str, ladder: Ladder, probe: Probe) -> None:
        self.ctx, self.media_id, self.version, self.ladder, self.probe = ctx, media_id, version, ladder, probe
        self.path = f"hls/{version}"
        self.prefix = f"{assets.prefix(media_id)}{self.path}/"
        self.storage = for_process(ctx.settings)

    def save(self, **extra: Any) -> None:
        data = {"ladder": ladders.to_json(self.ladder), "probe": asdict(self.probe), **extra}
        self.storage.put_bytes(
            self.prefix + BUILD, json.dumps(data).encode(), content_type="application/json"
        )

    @staticmethod
    def load(ctx: JobContext, media_id: str, version: str) -> tuple[Build, dict[str, Any]]:
        storage = for_process(ctx.settings)
        data = json.loads(storage.read_bytes(f"{assets.prefix(media_id)}hls/{version}/{BUILD}"))
        build = Build(ctx, media_id, version, ladders.from_json(data["ladder"]), Probe(**data["probe"]))
        return build, data

    def put_text(self, relative: str, text: str) -> None:
        self.storage.put_bytes(
            self.prefix + relative, text.encode(), content_type="application/vnd.apple.mpegurl"
        )

    def upload(self, out: Path, *, consume: bool = False) -> None:
        """Store every file under `out` in the version; `consume`: they are done with, and go from `out`."""
        self.storage.put_dir(self.prefix, out, consume=consume)

    def put_file(self, relative: str, path: Path, *, consume: bool = False) -> None:
        self.storage.put_file(
            self.prefix + relative, path, content_type=content_type_for(relative), consume=consume
        )

    def record(
        self, ready: list[str], sizes: dict[str, list[int]] | None = None, *, ladder: Ladder | None = None
    ) -> dict[str, Any]:
        """The asset's `hls`; `ladder`: the part of the ladder `sizes` measure (default the whole)."""
        ladder = ladder or self.ladder
        return {
            "path": self.path,
            "master": playlists.MASTER,
            "variants": playlists.variants(ladder, sizes, ready),
            # Where the segments put the source's time 0: captions map their cues there.
            "mpegts_zero": renditions.mpegts_time(self.probe.start_time),
            # What growing playlists promise (`livehls`): the version's stored ones say the same.
            "target": grids.target_duration(ladder.grid),
        }

    def publish(
        self, ready: list[str], sizes: dict[str, list[int]] | None = None, *, ladder: Ladder | None = None
    ) -> None:
        """The asset plays from here on (first processing only: a reprocess swaps at the end)."""
        job = (self.ctx.job_id, self.ctx.attempt)
        record = self.record(ready, sizes, ladder=ladder)
        if assets.publish_early(self.ctx.db, self.media_id, record, self.probe.public(), job=job):
            log.info("media %s plays (%s ready)", self.media_id, ", ".join(ready) or "growing renditions")


def seconds(ladder: Ladder, span: tuple[int, int]) -> float:
    start, end = ladder.grid.span(*span)
    return (end if end is not None else ladder.grid.end) - start


def audio_cost(ladder: Ladder) -> float:
    return max(0.01, ladders.AUDIO_COST_PER_S * ladder.grid.end)


def store_audio(build: Build, out: Path) -> list[int]:
    """Upload the audio rendition with its complete playlist (it is made whole, never by chunk)."""
    sizes = renditions.segment_sizes(out / AUDIO, 0, len(build.ladder.grid))
    (out / playlists.playlist_path(AUDIO)).write_text(playlists.media_playlist_for(build.ladder))
    build.upload(out, consume=True)
    shutil.rmtree(out / AUDIO, ignore_errors=True)
    return sizes


def make_audio(ctx: JobContext, build: Build, src: Path, out: Path, on_progress: Phase) -> list[int]:
    """Encode (or copy) the whole audio rendition and store it; its sizes.

    When it plays already (a lead published its first segment), each segment is stored as soon as it is
    made and the version's stream row lists it, so the sound grows with the picture.
    """
    lad = build.ladder
    row = chunks.get(ctx.db, build.media_id, build.version, chunks.STREAM_ROW)
    if row is None or row.done or AUDIO not in (row.sizes or {}):
        renditions.encode_audio(src, out, lad, build.probe, on_progress=on_progress)
        return store_audio(build, out)
    durations = lad.grid.durations()
    # What is listed stays listed: the segments the lead made are those this encode makes first.
    sizes: list[int] = list((row.sizes or {})[AUDIO])

    def store(complete: int) -> None:
        if complete <= len(sizes):
            return
        for i in range(len(sizes), complete):
            segment = f"{AUDIO}/{playlists.SEGMENT_NAME.format(i)}"
            sizes.append((out / segment).stat().st_size)
            build.put_file(segment, out / segment)
        streamed = {AUDIO: sizes}
        chunks.stream(ctx.db, build.media_id, build.version, durations[:complete], streamed, done=False)

    renditions.encode_audio(src, out, lad, build.probe, on_segments=store, on_progress=on_progress)
    build.put_text(playlists.playlist_path(AUDIO), playlists.media_playlist_for(lad))
    chunks.stream(ctx.db, build.media_id, build.version, durations, {AUDIO: sizes}, done=True)
    shutil.rmtree(out / AUDIO, ignore_errors=True)
    return sizes


@dataclass(frozen=True)
class Thumb:
    """A processing's thumbnail: its path, why there is none, and the time of the frame it shows."""

    path: str | None
    error: dict[str, str] | None
    time_s: float | None

    def saved(self) -> dict[str, Any]:
        return {"thumbnail": self.path, "thumbnail_error": self.error, "poster_time": self.time_s}

    @staticmethod
    def loaded(data: dict[str, Any]) -> Thumb:
        return Thumb(data.get("thumbnail"), data.get("thumbnail_error"), data.get("poster_time"))


def join(
    ctx: JobContext, build: Build, sizes: dict[str, list[int]], thumb: Thumb, *, pipeline: Sequence[str]
) -> dict[str, Any]:
    """Every segment is stored: write the playlists and the measured master; the asset is ready."""
    lad = build.ladder
    ctx.progress(JOIN_FROM + 1, "Writing the playlists")
    for r in lad.encoded:
        build.put_text(playlists.playlist_path(r.name), playlists.media_playlist_for(lad))
    build.put_text(playlists.MASTER, playlists.master(lad, lad.names, sizes))
    # What a derived asset's ladder reuses of this one (`media.inplace`): the plan and every segment's size.
    whole = json.dumps({"ladder": ladders.to_json(lad), "sizes": sizes})
    build.storage.put_bytes(build.prefix + LADDER, whole.encode(), content_type="application/json")
    hls_record = build.record(lad.names or [AUDIO], sizes)
    result = finish(ctx, build.media_id, build.probe, hls_record, thumb, pipeline=pipeline)
    # Only now: an attempt that stopped short of the swap's commit is retried with the plan where it was.
    try:
        build.storage.delete(build.prefix + BUILD)
    except Exception:  # the asset is ready; a plan left beside its files goes with them
        log.warning("media %s: version %s keeps its plan", build.media_id, build.version, exc_info=True)
    return result


def finish(
    ctx: JobContext,
    media_id: str,
    info: Probe,
    hls_record: dict[str, Any] | None,
    thumb: Thumb,
    *,
    pipeline: Sequence[str],
) -> dict[str, Any]:
    """Swap the new files in: the asset is ready; superseded files go after a grace period.

    What was made from the old HLS version (downloads, storyboard, images) goes with it; what the pipeline
    makes from the new one follows (`outputs.follow_up`). The swap, the version's chunk rows dropped (it is
    whole), the cleanup job and the follow-up jobs commit in one transaction: a failure before its commit
    (the database gone, a crash) leaves the asset as it was, for a retry to swap in; after it, all is there.
    """
    ctx.check_cancelled()
    media = require_media(ctx)
    thumbnail, thumbnail_error = thumb.path, thumb.error
    was = media.hls["path"] if media.hls else None
    now = hls_record["path"] if hls_record else None
    before = [(was, now), (media.thumbnail, thumbnail)]
    old = [path for path, new in before if path and path != new]
    derived = outputs.swapped(media, hls_record, info.public(), pipeline)
    if was and was != now:
        old += outputs.version_dirs(was.split("/", 1)[1])
    poster = media.poster
    if thumbnail != media.thumbnail:
        poster = {"time": thumb.time_s, "chosen": False} if thumbnail and thumb.time_s is not None else None
    with ctx.transaction() as tx:
        swapped = assets.update_media_in(
            tx.session,
            media_id,
            only_from=(assets.PROCESSING, assets.READY),
            while_running=(ctx.job_id, ctx.attempt),
            state=assets.READY,
            probe=info.public(),
            hls=hls_record,
            thumbnail=thumbnail,
            error=None,
            extra={**(media.extra or {}), "thumbnail_error": thumbnail_error},
            poster=poster,
            **derived,
        )
        if swapped:
            if now:
                chunks.drop_in(tx.session, media_id, now.split("/", 1)[1])
            if old:
                # Players that loaded the old playlists keep fetching its segments a while: removed later.
                grace = time.time() + ctx.settings.hls_swap_grace_s
                tx.submit("media.cleanup", {"paths": old, "not_before": grace})
            outputs.follow_up(tx, media_id, hls_record, info.public(), derived, pipeline)
    if not swapped:
        # Taken over (or the asset is going): what this attempt stored is no one's.
        storage = for_process(ctx.settings)
        if hls_record and (not media.hls or media.hls["path"] != hls_record["path"]):
            storage.delete_prefix(f"{assets.prefix(media_id)}{hls_record['path']}/")
        if thumbnail and thumbnail != media.thumbnail:
            storage.delete(f"{assets.prefix(media_id)}{thumbnail}")
        raise JobCancelled("this attempt was taken over by another; what it stored is removed")
    assets.moved(ctx.services, media_id, assets.READY)
    ctx.progress(100, "Ready")
    return {
        "media_id": media_id,
        "hls": hls_record,
        "thumbnail": thumbnail,
        "thumbnail_error": thumbnail_error,
    }


def abandon_builds(services: Services, media_id: str) -> None:
    """HLS versions left unfinished (their chunk rows say which): rows dropped, their files removed (the
    cleanup job commits with the rows' removal)."""
    with lifecycle.transaction(services, media_id=media_id) as tx:
        abandoned = [p for v in chunks.drop_all(tx.session, media_id) for p in chunks.version_paths(v)]
        if abandoned:
            tx.submit("media.cleanup", {"paths": abandoned})


def remove_paths(ctx: JobContext, paths: list[str]) -> int:
    """Remove files of the job's asset: version directories (`hls/…`, `downloads/…`, …) whole, anything else
    one file."""
    storage = for_process(ctx.settings)
    removed = 0
    for path in paths:
        key = f"{assets.prefix(ctx.media_id or '')}{path}"
        if path.startswith(outputs.VERSIONED):
            removed += storage.delete_prefix(key + "/")
        else:
            storage.delete(key)
            removed += 1
    return removed


@contextlib.contextmanager
def removed_if_taken_over(ctx: JobContext, versions: Sequence[str]) -> Iterator[None]:
    """What this attempt stores of `versions` (a list it adds to as it begins one) is removed when it stops
    because another attempt took the job over: the new attempt removed the versions' rows and files as it
    began, before these late writes."""
    try:
        yield
    except JobCancelled:
        if ctx.taken_over:
            for version in versions:
                removed = remove_paths(ctx, chunks.version_paths(version))
                log.info(
                    "taken over: removed %d file(s) of version %s this attempt stored late", removed, version
                )
        raise


def media_ended(job: Job, services: Services) -> None:
    """A media job ended short: the asset it was making first fails; a ready asset keeps what it has.

    A first processing (the asset is still `processing`: a reprocess runs on a `ready` one) that fails or
    is cancelled, for whatever reason, leaves the asset `failed` with the job's error, and what it published
    is withdrawn, even a stream that was whole: its last check (the decode of a copied stream, the join)
    had not passed, so nothing says it plays. An HLS version left unfinished (its chunk rows say which)
    leaves nothing behind: its stored files are removed.
    """
    if job.state == states.SUCCEEDED or job.media_id is None:
        return
    media = assets.find_media(services.db, job.media_id)
    if media is None:
        return
    error = job.error or {"code": "internal", "message": "the job ended without a result"}
    abandon_builds(services, media.id)
    # Whatever a failing first processing published goes with it, a thumbnail shown early too (one a person
    # chose stays); a ready asset's stream stays: a failed reprocess does not move it.
    withdrawn: dict[str, Any] = {"hls": None, "playable_at": None}
    early_thumbnail = media.thumbnail if not (media.poster or {}).get("chosen") else None
    if early_thumbnail:
        withdrawn.update(thumbnail=None, poster=None)
    with lifecycle.transaction(services, media_id=media.id) as tx:
        failed = assets.update_media_in(
            tx.session,
            media.id,
            only_from=(assets.PENDING, assets.IMPORTING, assets.PROCESSING),
            state=assets.FAILED,
            error=error,
            **withdrawn,
        )
        if failed and early_thumbnail:
            tx.submit("media.cleanup", {"paths": [early_thumbnail]})
    if failed:
        assets.moved(services, media.id, assets.FAILED)
