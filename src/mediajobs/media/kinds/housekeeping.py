"""media.cleanup and media.delete: removing an asset's superseded files, and the whole asset."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from mediajobs.jobs import lifecycle
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import NoParams, job_kind
from mediajobs.media import assets, events
from mediajobs.media.builds import remove_paths
from mediajobs.media.kinds import HOUR
from mediajobs.storage import for_process


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


@job_kind("media.delete", params=NoParams, queue="io", soft_time_limit_s=HOUR, max_attempts=10, public=False)
def delete_media(ctx: JobContext, params: NoParams) -> dict[str, Any]:
    """Stop the asset's jobs, remove every object under its prefix, then its record."""
    assert ctx.media_id is not None
    ctx.progress(5, "Stopping the asset's jobs")
    deadline = time.monotonic() + 60
    while pending := assets.unfinished_jobs(ctx.db, ctx.media_id, excluding=ctx.job_id):
        for job in pending:
            lifecycle.cancel(ctx.services, job.id)  # a queued one ends here, its end hook with it
        if time.monotonic() > deadline:
            break  # their files are removed anyway; a late upload is cleaned when they end
        ctx.sleep(0.25)
    ctx.progress(50, "Removing stored files")
    storage = for_process(ctx.settings)
    removed = storage.delete_prefix(assets.prefix(ctx.media_id))
    gone = assets.find_media(ctx.db, ctx.media_id)
    assets.delete_record(ctx.db, ctx.media_id)
    if gone is not None:
        events.fire(events.MediaEvent(events.DELETED, gone.id, gone), ctx.services)
    ctx.progress(100, "Deleted")
    return {"media_id": ctx.media_id, "objects_removed": removed}
