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
