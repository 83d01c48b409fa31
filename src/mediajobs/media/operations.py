"""Operations on a ready asset: what each takes, and the job kinds that do them (mask, cut, analyze, delete).

Each operation's request body is its job's params: one model here is both the route's body and the kind's
params. The toolkit (`mask.Region`, `cut.Range`) takes plain values; `to_region` and `to_range` convert to
them. Mask and remove-frames make a new asset whose parent is the source; it then runs the normal pipeline.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mediajobs.config import get_settings
from mediajobs.db.models import Job, Media
from mediajobs.db.session import Database, get_db
from mediajobs.errors import Conflict, PermanentError
from mediajobs.jobs import lifecycle, states
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import NoParams, job_kind
from mediajobs.media import assets, cut, mask
from mediajobs.media.analyze import analyze
from mediajobs.media.kinds import HOUR, Phase, fetch_original, probe_source, require_media, store_original
from mediajobs.media.probe import Probe
from mediajobs.media.smartrender import smart_cut, smart_mask
from mediajobs.storage import for_process
from mediajobs.webhooks import events

log = logging.getLogger(__name__)


class RegionIn(BaseModel):
    """A rectangle in source pixels, masked from `start` to `end` seconds (`end: null`: to the end)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)
    start: float = Field(default=0.0, ge=0)
    end: float | None = Field(default=None, ge=0)
    style: mask.Style = "blur"

    @model_validator(mode="after")
    def _times(self) -> RegionIn:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start (or null for 'until the end')")
        return self

    def to_region(self) -> mask.Region:
        return mask.Region(**self.model_dump())


class MaskCreate(BaseModel):
    """Regions to mask into a new asset; the `media.mask` job it starts has this body as its params."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str] = "media.mask"
    operation: ClassVar[str] = "mask"
    list_field: ClassVar[str] = "regions"
    regions: list[RegionIn] = Field(min_length=1, max_length=200)
    pipeline: list[assets.Step] | None = None

    def clipped(self, width: int, height: int, duration: float) -> list[mask.Region]:
        """The regions clipped to the frame; InvalidRegion naming one that masks nothing."""
        return mask.clip_regions([r.to_region() for r in self.regions], width, height, duration)


class RangeIn(BaseModel):
    """Seconds of the source to remove, `end` exclusive."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @model_validator(mode="after")
    def _order(self) -> RangeIn:
        if self.end <= self.start:
            raise ValueError("end must be after start (ranges are [start, end) in seconds)")
        return self

    def to_range(self) -> cut.Range:
        return (self.start, self.end)


class RemoveFramesCreate(BaseModel):
    """Ranges to cut out into a new asset; the `media.remove_frames` job has this body as its params."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str] = "media.remove_frames"
    operation: ClassVar[str] = "remove_frames"
    list_field: ClassVar[str] = "ranges"
    ranges: list[RangeIn] = Field(min_length=1, max_length=1000)
    pipeline: list[assets.Step] | None = None

    def merged(self, duration: float, fps: float | None) -> list[cut.Range]:
        """The ranges snapped to frames and merged; InvalidRanges naming one that does not fit."""
        return cut.merge_ranges([r.to_range() for r in self.ranges], duration, fps=fps)


class ReprocessCreate(BaseModel):
    """The pipeline to rebuild from the original (default: the asset's own)."""

    model_config = ConfigDict(extra="forbid")
    pipeline: list[assets.Step] | None = None


def ready_source(db: Database, media_id: str) -> Media:
    """The asset an operation reads: NotFound when there is none, Conflict unless it is ready and probed."""
    media = assets.get_media(db, media_id)
    if media.state != assets.READY:
        raise Conflict(f"media {media.id} is {media.state}; operations need a ready asset")
    if not media.probe:
        raise Conflict(f"media {media.id} has no probe data; reprocess it first")
    return media


def derive(db: Database, media_id: str, params: MaskCreate | RemoveFramesCreate) -> Media:
    """The new asset (not yet recorded) an operation makes from a ready source the request fits.

    Refuses at once what the job would refuse: NotFound, Conflict (not ready, no video to mask), or the
    toolkit's InvalidRegion / InvalidRanges naming the region or range that masks or removes nothing.
    """
    source = ready_source(db, media_id)
    probe = source.probe or {}
    if isinstance(params, MaskCreate):
        if not probe.get("width") or not probe.get("height"):
            raise Conflict(f"media {source.id} has no video to mask")
        params.clipped(probe["width"], probe["height"], probe["duration"])
    else:
        params.merged(probe["duration"], fps=probe.get("fps"))
    done = params.model_dump(mode="json", exclude={"pipeline"})
    return assets.new_media(
        source={"parent_id": source.id, "type": params.operation, **done},
        parent_id=source.id,
        pipeline=params.pipeline,
    )


def reprocess_params(source: Media, params: ReprocessCreate | None) -> dict[str, Any]:
    """The `media.process` params that rebuild the source's derived files."""
    asked = params.pipeline if params is not None else None
    return {"pipeline": asked or source.pipeline or assets.DEFAULT_PIPELINE, "reprocess": True}


def remove_asset(media_id: str) -> None:
    """Delete every object of an asset, then its record."""
    settings = get_settings()
    for_process(settings).delete_prefix(assets.prefix(media_id))
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


def _derive(ctx: JobContext) -> tuple[Any, Path, Probe]:
    derived = require_media(ctx)
    source = assets.find_media(ctx.db, derived.parent_id) if derived.parent_id else None
    if source is None or source.state == assets.DELETING:
        raise PermanentError(f"the source asset {derived.parent_id} was deleted", code="not_found")
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
    MaskCreate.kind,
    params=MaskCreate,
    queue="cpu",
    soft_time_limit_s=6 * HOUR,
    public=False,
    on_end=_derived_ended,
)
def mask_media(ctx: JobContext, params: MaskCreate) -> dict[str, Any]:
    """Blur, black out or pixelate regions into a new asset."""
    derived, src, info = _derive(ctx)
    regions = params.clipped(info.width or 0, info.height or 0, info.duration)
    out = ctx.temp_dir / "masked.mp4"
    # Smart rendering: only the GOPs a region shows in are re-encoded (or all of it, saying why).
    report = smart_mask(
        src,
        out,
        info,
        regions,
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 1, 95, f"Masking {len(regions)} region(s)"),
    )
    return {**_finish_derived(ctx, derived, out, "masked.mp4"), **report.public()}


@job_kind(
    RemoveFramesCreate.kind,
    params=RemoveFramesCreate,
    queue="cpu",
    soft_time_limit_s=6 * HOUR,
    public=False,
    on_end=_derived_ended,
)
def remove_frames_media(ctx: JobContext, params: RemoveFramesCreate) -> dict[str, Any]:
    """Cut time ranges out into a new asset."""
    derived, src, info = _derive(ctx)
    out = ctx.temp_dir / "cut.mp4"
    # Smart rendering: only the GOPs holding a cut are re-encoded (or all of it, saying why).
    report = smart_cut(
        src,
        out,
        info,
        [r.to_range() for r in params.ranges],
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 1, 95, f"Removing {len(params.ranges)} range(s)"),
    )
    return {**_finish_derived(ctx, derived, out, "cut.mp4"), **report.public()}


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
    storage = for_process(ctx.settings)
    removed = storage.delete_prefix(assets.prefix(ctx.media_id))
    gone = assets.find_media(ctx.db, ctx.media_id)
    assets.delete_record(ctx.db, ctx.media_id)
    events.media_deleted(ctx.db, gone)
    ctx.progress(100, "Deleted")
    return {"media_id": ctx.media_id, "objects_removed": removed}
