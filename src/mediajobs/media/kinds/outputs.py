"""What an asset's ladder is turned into once it is whole: downloads, the storyboard, images on request.

None of these encodes the video again. `media.downloads` remuxes a rung's segments and the audio rendition
into an MP4 and an M4A; `media.storyboard` decodes the smallest rung once into sprite sheets; `media.image`
decodes one segment (or a few) of the smallest rung big enough for the picture asked. Each works on one HLS
version and records its result only while that version is the asset's; otherwise it removes what it stored.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mediajobs.errors import JobCancelled, PermanentError
from mediajobs.jobs.context import JobContext, Phase
from mediajobs.jobs.registry import job_kind
from mediajobs.media import assets, downloads, images, segments, storyboards
from mediajobs.media.kinds import HOUR
from mediajobs.media.operations import recorded_probe
from mediajobs.media.originals import require_media
from mediajobs.storage import for_process
from mediajobs.toolkit import downloads as remuxing
from mediajobs.toolkit import stills
from mediajobs.toolkit import storyboard as boards

log = logging.getLogger(__name__)
VERSION = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")


class DownloadsParams(BaseModel):
    """Make, from HLS version `version`, an MP4 of the rung `mp4_height` pixels high and/or the M4A."""

    model_config = ConfigDict(extra="forbid")
    version: str = VERSION
    mp4_height: int | None = Field(default=None, ge=1)
    audio: bool = False


class StoryboardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = VERSION


def current(ctx: JobContext, version: str) -> Any:
    """The job's asset while `version` is its HLS version; `superseded` (permanent) otherwise."""
    media = require_media(ctx)
    if not media.hls or media.hls["path"] != f"hls/{version}":
        raise PermanentError(f"HLS version {version} of media {media.id} was replaced", code="superseded")
    return media


@contextmanager
def dropped_on_failure(ctx: JobContext, drop: Callable[[], None]) -> Iterator[None]:
    """Run `drop` when the job ends short for good (failed, cancelled, or out of attempts)."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, (PermanentError, JobCancelled)) or ctx.is_last_attempt:
            drop()
        raise


@job_kind("media.downloads", params=DownloadsParams, queue="io", soft_time_limit_s=2 * HOUR, public=False)
def make_downloads(ctx: JobContext, params: DownloadsParams) -> dict[str, Any]:
    """Remux a rung and the audio rendition into a progressive MP4 and an M4A (no encoding)."""
    media = current(ctx, params.version)
    storage = for_process(ctx.settings)
    wanted = []
    if params.mp4_height is not None:
        width = _width(media, params.mp4_height)
        wanted.append(downloads.entry(params.version, "mp4", height=params.mp4_height, width=width))
    if params.audio:
        wanted.append(downloads.entry(params.version, "audio"))
    paths = {e["path"] for e in wanted}

    def drop() -> None:
        kept = lambda es: [e for e in es if e["path"] not in paths or e["ready"]]  # noqa: E731
        downloads.update(ctx.db, media.id, params.version, kept)

    with dropped_on_failure(ctx, drop):
        ctx.progress(1, "Reading the renditions")
        video = segments.by_height(storage, media, params.mp4_height) if params.mp4_height else None
        if params.mp4_height and video is None:
            missing = f"media {media.id} has no {params.mp4_height} px high rung"
            raise PermanentError(missing, code="not_found")
        sound = segments.audio(storage, media)
        if params.audio and sound is None:
            raise PermanentError(f"media {media.id} has no audio", code="no_audio")
        work = ctx.temp_dir / "downloads"
        ctx.progress(2, "Fetching the segments")
        video_files = segments.all_files(ctx, storage, video, work / "video") if video else []
        audio_files = segments.all_files(ctx, storage, sound, work / "audio") if sound else []
        ctx.check_cancelled()
        files = {e["path"]: work / e["path"].rsplit("/", 1)[1] for e in wanted}
        mp4 = next((files[e["path"]] for e in wanted if e["type"] == "mp4"), None)
        m4a = next((files[e["path"]] for e in wanted if e["type"] == "audio"), None)
        remuxing.remux(
            video=video_files,
            audio=audio_files,
            mp4=mp4,
            m4a=m4a,
            probe=recorded_probe(media.probe or {}),
            work_dir=work,
            on_progress=Phase(ctx, 40, 90, "Writing the files"),
        )
        ctx.progress(90, "Storing the files")
        prefix = assets.prefix(media.id)
        for e in wanted:
            local = files[e["path"]]
            e.update(size=local.stat().st_size, ready=True)
            storage.put_file(prefix + e["path"], local, content_type=e["content_type"], consume=True)
        shutil.rmtree(work, ignore_errors=True)

        def add(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for e in wanted:
                entries = downloads.replace(entries, e)
            return entries

        if not downloads.update(ctx.db, media.id, params.version, add):
            for e in wanted:
                storage.delete(prefix + e["path"])
            raise PermanentError(f"HLS version {params.version} was replaced meanwhile", code="superseded")
    ctx.progress(100, "Ready")
    return {"downloads": [{k: e[k] for k in ("type", "height", "path", "size")} for e in wanted]}


def _width(media: Any, height: int) -> int | None:
    return next((v.get("width") for v in segments.video_variants(media) if v["height"] == height), None)


@job_kind("media.storyboard", params=StoryboardParams, queue="cpu", soft_time_limit_s=2 * HOUR, public=False)
def make_storyboard(ctx: JobContext, params: StoryboardParams) -> dict[str, Any]:
    """Tile the smallest rung into storyboard sprite sheets, with the WebVTT that maps times to tiles."""
    media = current(ctx, params.version)
    storage = for_process(ctx.settings)
    probe = recorded_probe(media.probe or {})
    if not probe.width or not probe.height:
        raise PermanentError(f"media {media.id} has no video", code="no_video")
    layout = boards.plan(probe.duration, probe.width, probe.height)
    rendition = segments.video(storage, media, best=False)
    work = ctx.temp_dir / "storyboard"
    ctx.progress(1, "Fetching the segments")
    files = segments.all_files(ctx, storage, rendition, work / "segments")
    out = work / "out"
    boards.render(
        files,
        out,
        layout,
        probe,
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 10, 95, f"Tiling {layout.count} frames"),
    )
    (out / boards.VTT_NAME).write_text(boards.vtt(layout, probe.duration))
    made = storyboards.record(params.version, layout)
    prefix = f"{assets.prefix(media.id)}{made['path']}/"
    ctx.progress(95, "Storing the storyboard")
    storage.put_dir(prefix, out, consume=True)
    if not storyboards.store(ctx.db, media.id, made):
        storage.delete_prefix(prefix)
        raise PermanentError(f"HLS version {params.version} was replaced meanwhile", code="superseded")
    ctx.progress(100, "Ready")
    return {"storyboard": made}


@job_kind(
    "media.image", params=images.ImageParams, queue="default", priority=9, soft_time_limit_s=300, public=False
)
def render_image(ctx: JobContext, params: images.ImageParams) -> dict[str, Any]:
    """Render one picture of the asset (a frame, an animated preview, or the poster) and store it."""
    media = current(ctx, params.version)
    storage = for_process(ctx.settings)
    probe = recorded_probe(media.probe or {})
    if not probe.width or not probe.height:
        raise PermanentError(f"media {media.id} has no video", code="no_video")
    display = (probe.width, probe.height)
    work = ctx.temp_dir / "image"
    work.mkdir(parents=True, exist_ok=True)  # the segments may be read where they are stored
    if params.still is not None:
        spec = params.still
        size = stills.sized(display, spec.width, spec.height, spec.fit)
        rendition = segments.video(storage, media, at_least=(size.width, size.height))
        t = spec.time_ms / 1000
        i = rendition.covering(t)
        [segment] = segments.files(ctx, storage, rendition, [i], work)
        out = work / f"still.{spec.format}"
        stills.frame_at(
            segment, out, t - rendition.starts[i], size, spec.format, probe, segment_s=rendition.durations[i]
        )
        content_type = stills.CONTENT_TYPES[spec.format]
    else:
        assert params.animated is not None
        anim = params.animated
        rendition = segments.video(storage, media, at_least=(anim.width, 1))
        start, end = anim.start_ms / 1000, anim.end_ms / 1000
        first, last = rendition.covering(start), rendition.covering(max(start, end - 0.001))
        files = segments.files(ctx, storage, rendition, range(first, last + 1), work)
        out = work / f"animated.{anim.format}"
        offset = rendition.starts[first]
        stills.animated(
            files,
            out,
            start=start - offset,
            end=end - offset,
            width=anim.width,
            fps=anim.fps,
            fmt=anim.format,
            source=display,
            probe=probe,
            threads=ctx.settings.effective_ffmpeg_threads,
        )
        content_type = stills.CONTENT_TYPES[anim.format]
    key = f"{assets.prefix(media.id)}{params.path}"
    size_bytes = out.stat().st_size
    storage.put_file(key, out, content_type=content_type, consume=True)
    if not params.poster:
        try:
            current(ctx, params.version)
        except PermanentError:
            # A new version (or the deletion) came while this rendered: its cleanup may have run already.
            storage.delete(key)
            raise
    if params.poster:
        assert params.still is not None
        with ctx.transaction() as tx:
            old = images.set_poster(tx.session, media.id, params.path, params.still.time_ms / 1000)
            if old:
                grace = time.time() + ctx.settings.hls_swap_grace_s
                tx.submit("media.cleanup", {"paths": [old], "not_before": grace})
    ctx.progress(100, "Rendered")
    return {"path": params.path, "content_type": content_type, "size": size_bytes}
