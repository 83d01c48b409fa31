"""Job kinds for operations on a ready asset: mask and remove frames (new assets), analyze, delete."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from mediajobs.config import get_settings
from mediajobs.db.models import Job
from mediajobs.db.session import get_db
from mediajobs.errors import PermanentError
from mediajobs.jobs import lifecycle, states
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import job_kind
from mediajobs.media import assets
from mediajobs.media.analyze import analyze
from mediajobs.media.cut import remove_frames
from mediajobs.media.kinds import HOUR, Phase, fetch_original, probe_source, require_media, store_original
from mediajobs.media.mask import Region, apply_mask, clip_regions
from mediajobs.media.probe import Probe
from mediajobs.webhooks import events

log = logging.getLogger(__name__)


def remove_asset(media_id: str) -> None:
    """Delete every object of an asset, then its record."""
    settings = get_settings()
    assets.storage_for(settings).delete_prefix(assets.prefix(media_id))
    assets.delete_record(get_db(settings.effective_database_url), media_id)


def _derived_ended(job: Job) -> None:
    """A cancelled operation leaves nothing behind; a failed one leaves its asset failed with the reason."""
    if job.media_id is None or job.state == states.SUCCEEDED:
        return
    db = get_db(get_settings().effective_database_url)
    if job.state == states.CANCELLED:
        remove_asset(job.media_id)
        return
    assets.update_media(
        db, job.media_id, only_from=(assets.PENDING, assets.PROCESSING), state=assets.FAILED, error=job.error
    )


class RegionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int
    y: int
    w: int
    h: int
    start: float = 0.0
    end: float | None = None
    style: str = "blur"


class MaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_id: str
    regions: list[RegionParams]


def _derive(ctx: JobContext, source_id: str) -> tuple[Any, Path, Probe]:
    derived = require_media(ctx)
    source = assets.find_media(ctx.db, source_id)
    if source is None or source.state == assets.DELETING:
        raise PermanentError(f"the source asset {source_id} was deleted", code="not_found")
    assets.update_media(ctx.db, derived.id, only_from=(assets.PENDING,), state=assets.PROCESSING)
    src = fetch_original(ctx, source)
    return derived, src, probe_source(ctx, src)


def _finish_derived(ctx: JobContext, derived: Any, out: Path, filename: str) -> dict[str, Any]:
    ctx.progress(96, "Storing the result")
    original = store_original(ctx, derived.id, out, filename)
    assets.update_media(ctx.db, derived.id, original=original, probe=probe_source(ctx, out).public())
    job_id = ctx.enqueue("media.process", {"pipeline": derived.pipeline or []})
    ctx.progress(100, "Done; building the stream")
    return {"media_id": derived.id, "process_job": job_id}


@job_kind(
    "media.mask",
    params=MaskParams,
    queue="cpu",
    soft_time_limit_s=6 * HOUR,
    public=False,
    on_end=_derived_ended,
)
def mask_media(ctx: JobContext, params: MaskParams) -> dict[str, Any]:
    """Blur, black out or pixelate regions into a new asset."""
    derived, src, info = _derive(ctx, params.source_id)
    regions = clip_regions(
        [Region(**r.model_dump()) for r in params.regions], info.width or 0, info.height or 0, info.duration
    )
    out = ctx.temp_dir / "masked.mp4"
    apply_mask(
        src,
        out,
        info,
        regions,
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 1, 95, f"Masking {len(regions)} region(s)"),
    )
    return _finish_derived(ctx, derived, out, "masked.mp4")


class RangeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: float
    end: float


class CutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_id: str
    ranges: list[RangeParams]


@job_kind(
    "media.remove_frames",
    params=CutParams,
    queue="cpu",
    soft_time_limit_s=6 * HOUR,
    public=False,
    on_end=_derived_ended,
)
def remove_frames_media(ctx: JobContext, params: CutParams) -> dict[str, Any]:
    """Cut time ranges out into a new asset."""
    derived, src, info = _derive(ctx, params.source_id)
    out = ctx.temp_dir / "cut.mp4"
    remove_frames(
        src,
        out,
        info,
        [(r.start, r.end) for r in params.ranges],
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 1, 95, f"Removing {len(params.ranges)} range(s)"),
    )
    return _finish_derived(ctx, derived, out, "cut.mp4")


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@job_kind("media.analyze", params=NoParams, queue="cpu", soft_time_limit_s=6 * HOUR, public=False)
def analyze_media(ctx: JobContext, params: NoParams) -> dict[str, Any]:
    """Scenes, black, silence, freezes and loudness of the original."""
    src = fetch_original(ctx, require_media(ctx))
    info = probe_source(ctx, src)
    return analyze(
        src,
        info,
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 2, 99, "Analyzing scenes, black, silence, freezes and loudness"),
    )


@job_kind("media.delete", params=NoParams, queue="io", soft_time_limit_s=HOUR, max_attempts=10, public=False)
def delete_media(ctx: JobContext, params: NoParams) -> dict[str, Any]:
    """Stop the asset's jobs, remove every object under its prefix, then its record."""
    assert ctx.media_id is not None
    ctx.progress(5, "Stopping the asset's jobs")
    deadline = time.monotonic() + 60
    while pending := assets.unfinished_jobs(ctx.db, ctx.media_id, excluding=ctx.job_id):
        for job in pending:
            lifecycle.cancel(ctx.db, job.id)  # a queued one ends here, its end hook with it
        if time.monotonic() > deadline:
            break  # their files are removed anyway; a late upload is cleaned when they end
        ctx.sleep(0.25)
    ctx.progress(50, "Removing stored files")
    storage = assets.storage_for(ctx.settings)
    removed = storage.delete_prefix(assets.prefix(ctx.media_id))
    gone = assets.find_media(ctx.db, ctx.media_id)
    assets.delete_record(ctx.db, ctx.media_id)
    events.media_deleted(ctx.db, gone)
    ctx.progress(100, "Deleted")
    return {"media_id": ctx.media_id, "objects_removed": removed}
