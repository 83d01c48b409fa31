"""The egress benchmark's baseline: `media.import` without the egress guard, yt-dlp on the machine's own
network. Only the baseline stack of bench/egress.py loads this module (MEDIAJOBS_KIND_MODULES); it takes the
built-in kind's place there, so the same route runs the same import, unguarded.
"""

from __future__ import annotations

import contextlib
from typing import Any

from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import job_kind, registry
from mediajobs.media.builds import media_ended
from mediajobs.media.kinds.imports import ImportParams, download_and_store

GUARDED = registry.get("media.import")


@job_kind(
    "media.import",
    params=ImportParams,
    queue=GUARDED.queue,
    soft_time_limit_s=GUARDED.soft_time_limit_s,
    public=False,
    on_end=media_ended,
)
def unguarded_import(ctx: JobContext, params: ImportParams) -> dict[str, Any]:
    """The import with no egress guard: what the guard costs is the difference."""
    return download_and_store(ctx, params, lambda settings: contextlib.nullcontext(None))
