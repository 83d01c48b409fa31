"""What happens once a job is terminal, whichever process ended it."""

from __future__ import annotations

import logging

from mediajobs.db.models import Job
from mediajobs.jobs.registry import registry
from mediajobs.webhooks.events import job_ended

log = logging.getLogger(__name__)


def run_end_hook(job: Job) -> None:
    """Call the kind's `on_end` hook, then emit the job's webhook event; failures are logged, never raised."""
    hook = registry.get(job.kind).on_end if job.kind in registry else None
    if hook is not None:
        try:
            hook(job)
        except Exception:
            log.exception("on_end hook of %s failed for job %s", job.kind, job.id)
    job_ended(job)
