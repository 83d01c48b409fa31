"""What happens once a job is terminal, whichever process ended it."""

from __future__ import annotations

import logging

from mediajobs.db.models import Job
from mediajobs.jobs.registry import registry

log = logging.getLogger(__name__)


def run_end_hook(job: Job) -> None:
    """Call the kind's `on_end` hook; a failing hook is logged, never raised into the engine."""
    if job.kind not in registry:
        return
    hook = registry.get(job.kind).on_end
    if hook is None:
        return
    try:
        hook(job)
    except Exception:
        log.exception("on_end hook of %s failed for job %s", job.kind, job.id)
