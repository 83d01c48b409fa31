"""Media job kinds and what they share: import, cleanup; fetching, probing and storing originals.

The HLS ladder (`media.process`) is in `transcode`; mask, cut, analyze and delete are in `operations`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from mediajobs.broker import broker_for
from mediajobs.config import Settings, get_settings
from mediajobs.db.models import Job
from mediajobs.db.session import Database, get_db
from mediajobs.egress import egress_guard
from mediajobs.errors import JobCancelled, PermanentError
from mediajobs.jobs import lifecycle, states
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import job_kind
from mediajobs.media import assets, chunks, ytdlp
from mediajobs.media.probe import Probe, probe
from mediajobs.storage import content_type_for, for_process

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
    for_process(ctx.settings).get_file(media.original["key"], local)
    return local


def probe_source(ctx: JobContext, path: Path) -> Probe:
    """Probe a source under the configured limits (MEDIAJOBS_MAX_DURATION_S, MEDIAJOBS_MAX_PIXELS)."""
    return probe(path, max_duration_s=ctx.settings.max_duration_s, max_pixels=ctx.settings.max_pixels)


def store_original(ctx: JobContext, media_id: str, path: Path, filename: str) -> dict[str, Any]:
    key = assets.original_key(media_id, assets.safe_filename(filename))
    content_type = content_type_for(key)
    for_process(ctx.settings).put_file(key, path, content_type=content_type)
    return {"size": path.stat().st_size, "content_type": content_type, "filename": filename, "key": key}


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value / 1e6:.1f} MB"


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


def abandon_builds(db: Database, settings: Settings, media_id: str) -> None:
    """HLS versions left unfinished (their chunk rows say which): rows dropped, their files removed."""
    abandoned = [p for v in chunks.versions(db, media_id) for p in chunks.version_paths(v)]
    if abandoned:
        chunks.drop_all(db, media_id)
        cleanup = {"paths": abandoned}
        lifecycle.submit(db, broker_for(settings), kind="media.cleanup", params=cleanup, media_id=media_id)


@contextlib.contextmanager
def removed_if_taken_over(ctx: JobContext, version: str) -> Iterator[None]:
    """What this attempt stores of `version` is removed when it stops because another attempt took the job
    over: the new attempt removed the version's rows and files as it began, before these late writes."""
    try:
        yield
    except JobCancelled:
        if ctx.taken_over:
            removed = remove_paths(ctx, chunks.version_paths(version))
            log.info(
                "taken over: removed %d file(s) of version %s this attempt stored late", removed, version
            )
        raise


def media_ended(job: Job) -> None:
    """A media job ended short: its asset fails, or stays ready when it already has a whole stream.

    An HLS version left unfinished (its chunk rows say which) leaves nothing behind: its stored files are
    removed and a stream that played only in part is withdrawn.
    """
    if job.state == states.SUCCEEDED or job.media_id is None:
        return
    settings = get_settings()
    db = get_db(settings.effective_database_url)
    media = assets.find_media(db, job.media_id)
    if media is None:
        return
    error = job.error or {"code": "internal", "message": "the job ended without a result"}
    abandon_builds(db, settings, media.id)
    whole = media.hls is not None and all(v.get("ready", True) for v in media.hls.get("variants", []))
    if whole and media.state == assets.PROCESSING:
        assets.update_media(
            db,
            media.id,
            only_from=(assets.PROCESSING,),
            state=assets.READY,
            extra={**(media.extra or {}), "last_error": error},
        )
        return
    withdrawn = {} if whole else {"hls": None, "playable_at": None}
    assets.update_media(
        db,
        media.id,
        only_from=(assets.PENDING, assets.IMPORTING, assets.PROCESSING),
        state=assets.FAILED,
        error=error,
        **withdrawn,
    )


@job_kind(
    "media.import",
    params=ImportParams,
    queue="io",
    soft_time_limit_s=4 * HOUR,
    public=False,
    on_end=media_ended,
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
    return {"removed": remove_paths(ctx, params.paths)}


def remove_paths(ctx: JobContext, paths: list[str]) -> int:
    """Remove files of the job's asset: `hls/…` directories whole, anything else one file."""
    storage = for_process(ctx.settings)
    removed = 0
    for path in paths:
        key = f"{assets.prefix(ctx.media_id or '')}{path}"
        if path.startswith("hls/"):
            removed += storage.delete_prefix(key + "/")
        else:
            storage.delete(key)
            removed += 1
    return removed
