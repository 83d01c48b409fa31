"""media.mask, media.remove_frames, media.clip, media.analyze: operations on a ready asset.

Mask, remove-frames and clip make a new asset (its `parent_id` the source) and run the normal pipeline on it;
their params are the request bodies of `media/operations.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mediajobs.db.models import Job
from mediajobs.errors import PermanentError
from mediajobs.jobs import states
from mediajobs.jobs.context import JobContext, Phase
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.registry import NoParams, job_kind
from mediajobs.media import assets
from mediajobs.media.kinds import HOUR
from mediajobs.media.operations import ClipCreate, MaskCreate, RemoveFramesCreate, remove_asset
from mediajobs.media.originals import fetch_original, probe_source, require_media, store_original
from mediajobs.toolkit.analyze import analyze
from mediajobs.toolkit.clip import render_clip
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.smart.render import RenderReport, smart_cut, smart_mask
from mediajobs.toolkit.sound import Sound

log = logging.getLogger(__name__)


def _derived_ended(job: Job, services: Services) -> None:
    """A cancelled operation leaves nothing behind; a failed one leaves its asset failed with the reason."""
    if job.media_id is None or job.state == states.SUCCEEDED:
        return
    if job.state == states.CANCELLED:
        remove_asset(services, job.media_id)
        return
    assets.update_media(
        services,
        job.media_id,
        only_from=(assets.PENDING, assets.PROCESSING),
        state=assets.FAILED,
        error=job.error,
    )


def _derive(ctx: JobContext) -> tuple[Any, Path, Probe, Any]:
    """The derived asset, the parent's original fetched and probed, and the parent as it was then."""
    derived = require_media(ctx)
    source = assets.find_media(ctx.db, derived.parent_id) if derived.parent_id else None
    if source is None or source.state == assets.DELETING:
        raise PermanentError(f"the source asset {derived.parent_id} was deleted", code="not_found")
    assets.update_media(ctx.services, derived.id, only_from=(assets.PENDING,), state=assets.PROCESSING)
    src = fetch_original(ctx, source)
    return derived, src, probe_source(ctx, src), source


def _from_parent(source: Any, report: RenderReport) -> dict[str, Any]:
    """How the derived ladder may reuse the parent's (`media.inplace`): the parent's HLS version as it was
    when the operation read the parent, and the smart render's edit; or why it may not."""
    if report.render != "smart":
        return {"reason": f"the operation re-encoded every picture ({report.reason})"}
    if report.edit is None:
        return {"reason": "the operation copied the parent's streams whole (a clip of everything)"}
    hls = source.hls or {}
    if not hls or not all(v.get("ready", True) for v in hls.get("variants", [])):
        return {"reason": "the parent has no whole ladder"}
    return {"version": hls["path"], "edit": report.edit.to_json()}


def _finish_derived(
    ctx: JobContext, derived: Any, out: Path, filename: str, from_parent: dict[str, Any]
) -> dict[str, Any]:
    ctx.progress(96, "Storing the result")
    probe = probe_source(ctx, out).public()
    original = store_original(ctx, derived.id, out, filename)
    params = {"pipeline": derived.pipeline or [], "from_parent": from_parent}
    with ctx.transaction() as tx:  # the original is recorded with the job that processes it
        assets.update_media_in(tx.session, derived.id, original=original, probe=probe)
        process = tx.submit("media.process", params)
    ctx.progress(100, "Done")  # the new asset's stream is its own media.process job
    return {"media_id": derived.id, "process_job": process.id}


def _masking(regions: int, sound: Sound) -> str:
    doing = [f"Masking {regions} region(s)"] if regions else []
    if sound.mode != "keep":
        doing.append("muting the sound" if sound.mode == "mute" else "removing the sound")
    elif sound.ranges:
        doing.append(f"editing {len(sound.ranges)} range(s) of the sound")
    text = ", ".join(doing)
    return text[0].upper() + text[1:]


@job_kind(
    MaskCreate.kind,
    params=MaskCreate,
    queue="cpu",
    soft_time_limit_s=6 * HOUR,
    public=False,
    on_end=_derived_ended,
)
def mask_media(ctx: JobContext, params: MaskCreate) -> dict[str, Any]:
    """Blur, black out or pixelate regions, and mute, bleep or remove the sound, into a new asset."""
    derived, src, info, source = _derive(ctx)
    regions, sound = params.checked(info)
    out = ctx.temp_dir / "masked.mp4"
    # Smart rendering: only the GOPs a region shows in are re-encoded (or all of it, saying why).
    report = smart_mask(
        src,
        out,
        info,
        regions,
        sound=sound,
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 1, 95, _masking(len(regions), sound)),
    )
    from_parent = _from_parent(source, report)
    return {**_finish_derived(ctx, derived, out, "masked.mp4", from_parent), **report.public()}


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
    derived, src, info, source = _derive(ctx)
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
    from_parent = _from_parent(source, report)
    return {**_finish_derived(ctx, derived, out, "cut.mp4", from_parent), **report.public()}


@job_kind(
    ClipCreate.kind,
    params=ClipCreate,
    queue="cpu",
    soft_time_limit_s=6 * HOUR,
    public=False,
    on_end=_derived_ended,
)
def clip_media(ctx: JobContext, params: ClipCreate) -> dict[str, Any]:
    """The frames of [start, end) and their sound into a new asset, cropped to an aspect when asked."""
    derived, src, info, source = _derive(ctx)
    start, end = params.window(info)
    # Without a crop a smart render: the GOPs inside the range are copied, only the ends re-encoded.
    name = "clip.mp4"
    out = ctx.temp_dir / name
    what = f"{params.crop.aspect} clip" if params.crop is not None else "clip"
    report = render_clip(
        src,
        out,
        info,
        start,
        end,
        crop=params.to_crop(),
        threads=ctx.settings.effective_ffmpeg_threads,
        on_progress=Phase(ctx, 1, 95, f"Cutting a {end - start:.1f} s {what}"),
    )
    from_parent = _from_parent(source, report)
    return {**_finish_derived(ctx, derived, out, name, from_parent), **report.public()}


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
