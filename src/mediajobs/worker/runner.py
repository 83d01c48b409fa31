"""Turns a delivered job id into work: claim the row, run the kind's handler, record how it ended."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from mediajobs import process
from mediajobs.config import Settings, get_settings
from mediajobs.db.models import Job
from mediajobs.db.session import get_db
from mediajobs.errors import JobCancelled, JobTimeout, MediajobsError, TransientError
from mediajobs.jobs import service, states
from mediajobs.jobs.context import JobContext, Watcher
from mediajobs.jobs.lifecycle import run_end_hook
from mediajobs.jobs.registry import Kind, registry
from mediajobs.sandbox import Limits

log = logging.getLogger(__name__)

_watchers: dict[int, Watcher] = {}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _watcher() -> Watcher:
    pid = os.getpid()
    if pid not in _watchers:
        settings = get_settings()
        _watchers[pid] = Watcher(get_db(settings.effective_database_url), settings)
    return _watchers[pid]


def backoff_s(attempt: int, kind: Kind | None = None) -> float:
    """The wait before attempt `attempt + 1`: the kind's own schedule, or exponential backoff."""
    settings = get_settings()
    if kind is not None and kind.retry_delays_s:
        # Scaled with the base, so that a deployment (or a test) that shortens backoff shortens these too.
        scale = settings.retry_backoff_base_s / Settings.model_fields["retry_backoff_base_s"].default
        return kind.retry_delays_s[min(attempt, len(kind.retry_delays_s)) - 1] * scale
    return min(settings.retry_backoff_max_s, settings.retry_backoff_base_s * 2 ** (attempt - 1))


def run_job(job_id: str, attempt: int) -> None:
    settings = get_settings()
    db = get_db(settings.effective_database_url)
    job = service.start(db, job_id=job_id, attempt=attempt, worker=worker_name())
    if job is None:
        log.info(
            "job %s attempt %d is not queued any more (cancelled, done or a duplicate); skipped",
            job_id,
            attempt,
        )
        return
    ctx = JobContext(
        db=db,
        settings=settings,
        job_id=job.id,
        attempt=job.attempt,
        kind=job.kind,
        media_id=job.media_id,
        max_attempts=job.max_attempts,
    )
    watcher = _watcher()
    watcher.add(ctx)
    try:
        outcome = _execute(ctx, job)
    finally:
        watcher.remove(ctx)
        ctx.cleanup()
    _record(ctx, job, *outcome)


def _execute(ctx: JobContext, job: Job) -> tuple[str, Any, MediajobsError | None]:
    """Run the handler; returns (state, result, error) without touching the row."""
    try:
        if job.kind not in registry:
            raise MediajobsError(
                f"job kind {job.kind!r} is not registered in this worker "
                "(check MEDIAJOBS_KIND_MODULES is the same for API and workers)"
            )
        kind: Kind = registry.get(job.kind)
        try:
            params = kind.params.model_validate(job.params)
        except ValidationError as exc:
            raise MediajobsError(
                f"stored params are invalid: {exc.errors()[0]['msg']}", code="invalid_params"
            ) from exc
        limits = Limits(memory_bytes=ctx.settings.child_memory_bytes or None)
        with process.cancellable(ctx.cancel_event, limits):
            result = kind.handler(ctx, params)
        if ctx.cancel_event.is_set():
            return states.CANCELLED, None, JobCancelled("cancelled by request; its work has stopped")
        return states.SUCCEEDED, to_jsonable_python(result), None
    except JobCancelled:
        return states.CANCELLED, None, JobCancelled("cancelled by request; its work has stopped")
    except SoftTimeLimitExceeded:
        kind_limit = registry.get(job.kind).soft_time_limit_s
        return states.FAILED, None, JobTimeout(f"ran past its time limit of {kind_limit:g} s and was stopped")
    except TransientError as exc:
        log.info("job %s attempt %d hit a transient error: %s", job.id, job.attempt, exc)
        return states.RETRYING, None, exc
    except MediajobsError as exc:
        log.info("job %s failed: [%s] %s", job.id, exc.code, exc)
        return states.FAILED, None, exc
    except Exception as exc:
        log.exception("job %s (%s) crashed", job.id, job.kind)
        return states.FAILED, None, MediajobsError(f"{type(exc).__name__}: {exc}")


def _record(ctx: JobContext, job: Job, state: str, result: Any, error: MediajobsError | None) -> None:
    db = ctx.db
    err = {"code": error.code, "message": error.message} if error is not None else None
    if state == states.RETRYING:
        assert err is not None
        if job.attempt < job.max_attempts and not ctx.cancel_event.is_set():
            delay = backoff_s(job.attempt, registry.get(job.kind) if job.kind in registry else None)
            err["message"] += f" (attempt {job.attempt} of {job.max_attempts}; next in {delay:g} s)"
            service.schedule_retry(db, job_id=job.id, attempt=job.attempt, error=err, delay_s=delay)
            return
        state = states.FAILED
    ended = service.finish(db, job_id=job.id, attempt=job.attempt, state=state, result=result, error=err)
    if ended is not None:
        run_end_hook(ended)
