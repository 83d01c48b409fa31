"""An asset's original as jobs use it: the asset a job works on; fetching, probing, storing originals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediajobs.errors import PermanentError
from mediajobs.jobs.context import JobContext
from mediajobs.media import assets
from mediajobs.storage import content_type_for, for_process
from mediajobs.toolkit.probe import Probe, probe


def require_media(ctx: JobContext) -> Any:
    """The job's asset; PermanentError `not_found` when it is gone or being deleted."""
    assert ctx.media_id is not None
    media = assets.find_media(ctx.db, ctx.media_id)
    if media is None or media.state == assets.DELETING:
        raise PermanentError(f"media asset {ctx.media_id} was deleted", code="not_found")
    return media


def fetch_original(ctx: JobContext, media: Any) -> Path:
    """The asset's original as a file the job and its children read (never write): the stored file itself
    where the storage keeps files (local storage: nothing is copied, and its directory is shown to the job's
    jailed children read-only), else fetched into the job's temp dir."""
    if not media.original:
        raise PermanentError(f"media asset {media.id} has no original file", code="not_found")
    key = media.original["key"]
    storage = for_process(ctx.settings)
    in_place = storage.readable_path(key)
    if in_place is not None:
        ctx.allow_reading(in_place.parent)
        return in_place
    local = ctx.temp_dir / "source" / key.rsplit("/", 1)[-1]
    local.parent.mkdir(parents=True, exist_ok=True)
    ctx.progress(0, "Fetching the original from storage")
    storage.get_file(key, local)
    return local


def probe_source(ctx: JobContext, path: Path) -> Probe:
    """Probe a source under the configured limits (MEDIAJOBS_MAX_DURATION_S, MEDIAJOBS_MAX_PIXELS)."""
    return probe(path, max_duration_s=ctx.settings.max_duration_s, max_pixels=ctx.settings.max_pixels)


def store_original(ctx: JobContext, media_id: str, path: Path, filename: str) -> dict[str, Any]:
    """Store the job's file at `path` as the asset's original; it moves into storage (`path` goes)."""
    key = assets.original_key(media_id, assets.safe_filename(filename))
    content_type = content_type_for(key)
    size = path.stat().st_size
    for_process(ctx.settings).put_file(key, path, content_type=content_type, consume=True)
    return {"size": size, "content_type": content_type, "filename": filename, "key": key}
