"""media.import: download a URL's video with yt-dlp through the egress guard, store it, then process it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from pydantic import BaseModel, ConfigDict

from mediajobs.config import Settings
from mediajobs.egress import Guard, egress_guard, ytdlp
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import job_kind
from mediajobs.media import assets, titles
from mediajobs.media.builds import media_ended
from mediajobs.media.kinds import HOUR
from mediajobs.media.originals import probe_source, require_media, store_original

# What puts yt-dlp behind the egress guard for one download (a Guard), or nothing.
Guarding = Callable[[Settings], AbstractContextManager[Guard | None]]


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value / 1e6:.1f} MB"


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


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
    # Every connection yt-dlp makes goes through the guard's proxy, which vets each one as it is made.
    return download_and_store(ctx, params, egress_guard)


def download_and_store(ctx: JobContext, params: ImportParams, guarded: Guarding) -> dict[str, Any]:
    """The import, yt-dlp's connections going through `guarded(settings)`: the egress guard."""
    media = require_media(ctx)
    assets.update_media(
        ctx.services, media.id, only_from=(assets.PENDING, assets.IMPORTING), state=assets.IMPORTING
    )
    ctx.progress(0, "Resolving the URL")

    def on_download(done: int, total: int | None, speed: float | None, eta: float | None) -> None:
        percent = 90.0 * done / total if total else 0.0
        ctx.progress(percent, f"Downloading {_mb(done)} of {_mb(total)} at {_mb(speed)}/s", eta_seconds=eta)

    with guarded(ctx.settings) as guard:
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
    # The page's title names it, unless a person renamed it while it downloaded.
    assets.rename(ctx.services, media.id, titles.fit(got.title, media.title), only_if=media.title)
    # Processing, and its job, commit together: an import that stops short leaves no asset waiting on a job
    # that was never made.
    with ctx.transaction() as tx:
        assets.update_media_in(
            tx.session,
            media.id,
            only_from=(assets.IMPORTING,),
            state=assets.PROCESSING,
            original=original,
            probe=info.public(),
            source={**media.source, "title": got.title},
        )
        process = tx.submit("media.process", {"pipeline": media.pipeline or []})
    ctx.progress(100, "Imported")
    return {"media_id": media.id, "size": original["size"], "process_job": process.id}
