"""The media job kinds: import, process (probe, HLS, thumbnail), mask, remove frames, analyze, delete."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from mediajobs.config import get_settings
from mediajobs.db.models import Job
from mediajobs.db.session import get_db
from mediajobs.egress import egress_guard
from mediajobs.errors import MediajobsError, PermanentError
from mediajobs.jobs import states
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import job_kind
from mediajobs.media import assets, ytdlp
from mediajobs.media.hls import plan_ladder, transcode_hls
from mediajobs.media.probe import Probe, probe
from mediajobs.media.thumbnail import make_thumbnail
from mediajobs.storage import content_type_for

log = logging.getLogger(__name__)
HOUR = 3600.0


class Phase:
    """Maps a step's 0..1 fraction onto a slice of the job's 0-100 % with one stage text."""

    def __init__(self, ctx: JobContext, start: float, end: float, stage: str) -> None:
        self.ctx, self.start, self.end, self.stage = ctx, start, end, stage
        ctx.progress(start, stage)

    def __call__(self, fraction: float) -> None:
        self.ctx.progress(self.start + (self.end - self.start) * fraction, self.stage)


def require_media(ctx: JobContext) -> Any:
    assert ctx.media_id is not None
    media = assets.find_media(ctx.db, ctx.media_id)
    if media is None or media.state == assets.DELETING:
        raise PermanentError(f"media asset {ctx.media_id} was deleted", code="not_found")
    return media


def fetch_original(ctx: JobContext, media: Any) -> Path:
    if not media.original:
        raise PermanentError(f"media asset {media.id} has no original file", code="not_found")
    name = media.original["key"].rsplit("/", 1)[-1]
    local = ctx.temp_dir / "source" / name
    local.parent.mkdir(parents=True, exist_ok=True)
    ctx.progress(0, "Fetching the original from storage")
    assets.storage_for(ctx.settings).get_file(media.original["key"], local)
    return local


def probe_source(ctx: JobContext, path: Path) -> Probe:
    """Probe a source under the configured limits (MEDIAJOBS_MAX_DURATION_S, MEDIAJOBS_MAX_PIXELS)."""
    return probe(path, max_duration_s=ctx.settings.max_duration_s, max_pixels=ctx.settings.max_pixels)


def store_original(ctx: JobContext, media_id: str, path: Path, filename: str) -> dict[str, Any]:
    key = assets.original_key(media_id, assets.safe_filename(filename))
    content_type = content_type_for(key)
    assets.storage_for(ctx.settings).put_file(key, path, content_type=content_type)
    return {"size": path.stat().st_size, "content_type": content_type, "filename": filename, "key": key}


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value / 1e6:.1f} MB"


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


def _media_ended(job: Job) -> None:
    """A media job ended short: its asset fails, or stays ready when it already has a stream."""
    if job.state == states.SUCCEEDED or job.media_id is None:
        return
    db = get_db(get_settings().effective_database_url)
    media = assets.find_media(db, job.media_id)
    if media is None:
        return
    error = job.error or {"code": "internal", "message": "the job ended without a result"}
    if media.hls and media.state == assets.PROCESSING:
        assets.update_media(
            db,
            media.id,
            only_from=(assets.PROCESSING,),
            state=assets.READY,
            extra={**(media.extra or {}), "last_error": error},
        )
        return
    assets.update_media(
        db,
        media.id,
        only_from=(assets.PENDING, assets.IMPORTING, assets.PROCESSING),
        state=assets.FAILED,
        error=error,
    )


@job_kind(
    "media.import",
    params=ImportParams,
    queue="io",
    soft_time_limit_s=4 * HOUR,
    public=False,
    on_end=_media_ended,
)
def import_media(ctx: JobContext, params: ImportParams) -> dict[str, Any]:
    """Download the source with yt-dlp, store it, then hand it to the processing pipeline."""
    media = require_media(ctx)
    assets.update_media(
        ctx.db, media.id, only_from=(assets.PENDING, assets.IMPORTING), state=assets.IMPORTING
    )
    ctx.progress(0, "Resolving the URL")

    def on_download(done: int, total: int | None, speed: float | None, eta: float | None) -> None:
        percent = 90.0 * done / total if total else 0.0
        ctx.progress(percent, f"Downloading {_mb(done)} of {_mb(total)} at {_mb(speed)}/s", eta_seconds=eta)

    # Every connection yt-dlp makes goes through the guard's proxy, which vets each one as it is made.
    guarded = contextlib.nullcontext(None) if ytdlp.BENCH_UNGUARDED else egress_guard(ctx.settings)
    with guarded as guard:
        got = ytdlp.download(
            params.url,
            ctx.temp_dir / "download",
            max_bytes=ctx.settings.max_upload_bytes,
            guard=guard,
            on_progress=on_download,
        )
    # Under the configured limits before anything is stored: a forged or oversized source stops here.
    info = probe_source(ctx, got.path)
    ctx.progress(90, "Storing the original")
    original = store_original(ctx, media.id, got.path, got.filename)
    ctx.check_cancelled()
    assets.update_media(
        ctx.db,
        media.id,
        only_from=(assets.IMPORTING,),
        state=assets.PROCESSING,
        original=original,
        probe=info.public(),
        source={**media.source, "title": got.title},
    )
    ctx.progress(100, "Imported")
    job_id = ctx.enqueue("media.process", {"pipeline": media.pipeline or []})
    return {"media_id": media.id, "size": original["size"], "process_job": job_id}


class ProcessParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline: list[str] = assets.DEFAULT_PIPELINE
    reprocess: bool = False


@job_kind(
    "media.process",
    params=ProcessParams,
    queue="cpu",
    soft_time_limit_s=6 * HOUR,
    public=False,
    on_end=_media_ended,
)
def process_media(ctx: JobContext, params: ProcessParams) -> dict[str, Any]:
    """Probe the original, build the HLS ladder and the thumbnail, then swap them in."""
    media = require_media(ctx)
    if not params.reprocess:
        assets.update_media(
            ctx.db, media.id, only_from=(assets.PENDING, assets.PROCESSING), state=assets.PROCESSING
        )
    src = fetch_original(ctx, media)
    ctx.progress(2, "Probing")
    info = probe_source(ctx, src)
    version = uuid.uuid4().hex[:10]
    work = ctx.temp_dir / "out"
    hls, thumbnail, thumbnail_error = media.hls, media.thumbnail, None
    if "hls" in params.pipeline:
        hls = _hls(ctx, media.id, src, info, version, work / "hls")
    if "thumbnail" in params.pipeline:
        thumbnail, thumbnail_error = _thumbnail(ctx, media.id, src, info, version, work)
    ctx.check_cancelled()
    old = [
        p
        for p, new in ((media.hls and media.hls["path"], hls and hls["path"]), (media.thumbnail, thumbnail))
        if p and p != new
    ]
    assets.update_media(
        ctx.db,
        media.id,
        only_from=(assets.PROCESSING, assets.READY),
        state=assets.READY,
        probe=info.public(),
        hls=hls,
        thumbnail=thumbnail,
        error=None,
        extra={**(media.extra or {}), "thumbnail_error": thumbnail_error},
    )
    if old:
        # Players that loaded the old playlists keep fetching its segments for a while: remove them later.
        ctx.enqueue(
            "media.cleanup", {"paths": old, "not_before": time.time() + ctx.settings.hls_swap_grace_s}
        )
    ctx.progress(100, "Ready")
    return {"media_id": media.id, "hls": hls, "thumbnail": thumbnail, "thumbnail_error": thumbnail_error}


def _hls(ctx: JobContext, media_id: str, src: Path, info: Probe, version: str, out: Path) -> dict[str, Any]:
    names = ", ".join(r.name for r in plan_ladder(info)) or "audio"
    result = transcode_hls(
        src,
        out,
        info,
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 3, 92, f"Transcoding to HLS ({names})"),
    )
    ctx.progress(92, "Uploading the HLS stream")
    path = f"hls/{version}"
    assets.storage_for(ctx.settings).put_dir(f"{assets.prefix(media_id)}{path}/", out)
    return {"path": path, "master": result.master, "variants": result.variants}


def _thumbnail(
    ctx: JobContext, media_id: str, src: Path, info: Probe, version: str, work: Path
) -> tuple[str | None, dict[str, str] | None]:
    """A thumbnail, or the reason there is none; it never fails the asset."""
    ctx.progress(96, "Making the thumbnail")
    try:
        if not info.has_video:
            raise PermanentError("the source has no video stream", code="no_video")
        local = make_thumbnail(src, work / "thumbnail.jpg", info)
        path = f"thumbnail/{version}.jpg"
        assets.storage_for(ctx.settings).put_file(
            f"{assets.prefix(media_id)}{path}", local, content_type="image/jpeg"
        )
        return path, None
    except MediajobsError as exc:
        if exc.code == "cancelled":
            raise
        log.info("no thumbnail for %s: %s", media_id, exc)
        return None, {"code": exc.code, "message": str(exc)}


class CleanupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str]
    not_before: float = 0.0


@job_kind(
    "media.cleanup", params=CleanupParams, queue="io", soft_time_limit_s=HOUR, max_attempts=8, public=False
)
def cleanup_media(ctx: JobContext, params: CleanupParams) -> dict[str, int]:
    """Remove superseded derived files (after a grace period for players still using them)."""
    wait = params.not_before - time.time()
    if wait > 0:
        ctx.progress(0, f"Waiting {wait:.0f} s for players of the old stream")
        ctx.sleep(wait)
    storage = assets.storage_for(ctx.settings)
    removed = 0
    for path in params.paths:
        key = f"{assets.prefix(ctx.media_id or '')}{path}"
        if path.startswith("hls/"):
            removed += storage.delete_prefix(key + "/")
        else:
            storage.delete(key)
            removed += 1
    return {"removed": removed}
