"""Turns a delivered job id into work: claim the row, run the kind's handler, record how it ended.

A database outage is ridden through: the claim and the outcome are retried for `db_outage_grace_s`, and a
claim that still cannot be made sends the message back to the broker instead of acking it. A stopping worker
hands back what will not finish within `shutdown_grace_s`: stopped, re-queued as an attempt that uses none
up, and published again.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from billiard.exceptions import SoftTimeLimitExceeded
from billiard.process import current_process
from celery.exceptions import Reject
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from mediajobs import bootstrap, process
from mediajobs.config import Settings, get_settings
from mediajobs.db.models import Job
from mediajobs.db.session import Database, is_unreachable, ride_through
from mediajobs.errors import (
    JobCancelled,
    JobTimeout,
    MediajobsError,
    NotFound,
    ResourceLimit,
    TransientError,
)
from mediajobs.jobs import fanout, lifecycle, rows, states
from mediajobs.jobs.context import JobContext, Watcher
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.registry import Kind, registry
from mediajobs.nodes import STORAGE_PROBLEMS, report_storage_error
from mediajobs.sandbox import Limits, Sandbox

log = logging.getLogger(__name__)

_watchers: dict[tuple[int, str], Watcher] = {}
HAND_BACK = "handed_back"
# The handler returned a FanOut: the job waits for its children (not a state of the contract).
WAITING = "waiting"


class StopDeadline:
    """When a stopping worker wants its running jobs back (monotonic seconds, shared with the pool children).

    The shared half is anonymous shared memory made before the pool forks, written by the main process from
    its shutdown signal handler (no locks there); the local half is a child's own SIGTERM.
    """

    def __init__(self) -> None:
        self._shared = mmap.mmap(-1, 8)
        self._local = 0.0

    def set(self, deadline: float, *, local: bool = False) -> None:
        if local:
            self._local = self._local or deadline
        elif not struct.unpack_from("d", self._shared)[0]:
            struct.pack_into("d", self._shared, 0, deadline)

    def get(self) -> float | None:
        values = [v for v in (struct.unpack_from("d", self._shared)[0], self._local) if v]
        return min(values) if values else None

    @property
    def local(self) -> bool:
        return bool(self._local)


stop_deadline = StopDeadline()
_current: JobContext | None = None
_previous_term: Any = None


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _watcher(services: Services) -> Watcher:
    """This process's watcher of jobs in this database (a pool child has its own)."""
    key = (os.getpid(), services.db.url)
    if key not in _watchers:
        _watchers[key] = Watcher(services.db, services.settings, stop_deadline.get)
    return _watchers[key]


def _on_sigterm(signum: int, frame: Any) -> None:
    # A stop of the whole process group (`mediajobs up`, systemd) reaches the pool children as well as the
    # worker; billiard's handler would exit at once and leave the job to the reaper. The first SIGTERM while
    # a job runs starts the graceful stop instead; any other exits as billiard's handler does.
    if _current is not None and not stop_deadline.local:
        stop_deadline.set(time.monotonic() + _current.settings.shutdown_grace_s, local=True)
        return
    if callable(_previous_term):
        _previous_term(signum, frame)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm_handler() -> None:
    """In a pool child (once, from its main thread, after billiard set its own handlers)."""
    global _previous_term
    if _previous_term is not None or current_process().name == "MainProcess":
        return
    if threading.current_thread() is threading.main_thread():
        _previous_term = signal.getsignal(signal.SIGTERM) or signal.SIG_DFL
        signal.signal(signal.SIGTERM, _on_sigterm)


def backoff_s(settings: Settings, attempt: int, kind: Kind | None = None) -> float:
    """The wait before attempt `attempt + 1`: the kind's own schedule, or exponential backoff."""
    if kind is not None and kind.retry_delays_s:
        # Scaled with the base, so that a deployment (or a test) that shortens backoff shortens these too.
        scale = settings.retry_backoff_base_s / Settings.model_fields["retry_backoff_base_s"].default
        return kind.retry_delays_s[min(attempt, len(kind.retry_delays_s)) - 1] * scale
    return min(settings.retry_backoff_max_s, settings.retry_backoff_base_s * 2 ** (attempt - 1))


def _claim(services: Services, job_id: str, attempt: int) -> Job | None:
    """queued → running, waiting out a database outage; the message goes back to the broker past the grace."""
    me = worker_name()
    grace_s = services.settings.db_outage_grace_s
    tries = 0

    def claim() -> Job | None:
        nonlocal tries
        tries += 1
        job = lifecycle.start(services, job_id=job_id, attempt=attempt, worker=me)
        if job is None and tries > 1:
            # A claim that committed just before the connection broke looks lost; the row says it was ours.
            with contextlib.suppress(NotFound):
                row = rows.get_job(services.db, job_id)
                if row.state == states.RUNNING and row.attempt == attempt and row.worker == me:
                    return row
        return job

    try:
        return ride_through(claim, grace_s=grace_s, what=f"the claim of job {job_id}")
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        # Never acked and dropped: with late acks, Reject(requeue) puts the message back for a later try.
        raise Reject(f"database unreachable for {grace_s:g} s; job {job_id} goes back", requeue=True) from exc


def run_job(job_id: str, attempt: int) -> None:
    """The Celery task: run a delivered job with the Services of this process's own Settings."""
    run(bootstrap.services(get_settings()), job_id, attempt)


def run(services: Services, job_id: str, attempt: int) -> None:
    """Claim the job's attempt, run its handler, record how it ended (in this process, on these Services)."""
    global _current
    job = _claim(services, job_id, attempt)
    if job is None:
        log.info(
            "job %s attempt %d is not queued any more (cancelled, done or a duplicate); skipped",
            job_id,
            attempt,
        )
        return
    ctx = JobContext(
        services=services,
        job_id=job.id,
        attempt=job.attempt,
        kind=job.kind,
        media_id=job.media_id,
        max_attempts=job.max_attempts,
    )
    _install_sigterm_handler()
    watcher = _watcher(services)
    watcher.add(ctx)
    _current = ctx
    try:
        try:
            outcome = _execute(ctx, job)
        finally:
            watcher.remove(ctx)
            ctx.cleanup()
        error = outcome[2]
        if error is not None and error.code in STORAGE_PROBLEMS:
            # This worker cannot use the storage: its node record (doctor, /readyz) says so at once.
            report_storage_error(services.db, error)
        _record(ctx, job, *outcome)
    finally:
        _current = None


def job_sandbox(ctx: JobContext) -> Sandbox:
    """What the job's jailed children see of the machine: its temp dir, nothing of this deployment's files."""
    settings = ctx.settings
    hidden = [settings.data_dir, settings.effective_temp_dir]
    storage = urlsplit(settings.effective_storage_url)
    if storage.scheme == "file":
        hidden.append(Path(unquote(storage.path)))
    return Sandbox(workdir=lambda: ctx.temp_dir, hidden=tuple(hidden), readable=lambda: tuple(ctx.readable))


def _execute(ctx: JobContext, job: Job) -> tuple[str, Any, MediajobsError | None]:
    """Run the handler; returns (state, result, error) without touching the row."""
    try:
        if job.kind not in registry:
            raise MediajobsError(
                f"job kind {job.kind!r} is not registered in this worker "
                "(check MEDIAJOBS_KIND_MODULES is the same for API and workers)"
            )
        kind: Kind = registry.get(job.kind)
        if job.fan_phase == fanout.JOINING:
            if job.join_kind is None:  # retried after its children all succeeded, with nothing to join
                return states.SUCCEEDED, {"children": job.children_total or 0}, None
            kind = registry.get(job.join_kind)
        try:
            params = kind.params.model_validate(job.params)
        except ValidationError as exc:
            raise MediajobsError(
                f"stored params are invalid: {exc.errors()[0]['msg']}", code="invalid_params"
            ) from exc
        limits = Limits(memory_bytes=ctx.settings.child_memory_bytes or None)
        with process.cancellable(ctx.cancel_event, limits, job_sandbox(ctx)):
            result = kind.handler(ctx, params)
        if ctx.cancel_event.is_set():
            return states.CANCELLED, None, JobCancelled("cancelled by request; its work has stopped")
        if isinstance(result, fanout.FanOut):
            if job.fan_phase is not None:
                raise MediajobsError(
                    "a job fans out once; its join cannot fan out again", code="invalid_fan_out"
                )
            return WAITING, result, None
        return states.SUCCEEDED, to_jsonable_python(result), None
    except JobCancelled as exc:
        # By request (the watcher's event), or the handler found its work withdrawn (its own words).
        why = "cancelled by request; its work has stopped" if ctx.cancel_event.is_set() else str(exc)
        return states.CANCELLED, None, JobCancelled(why)
    except SoftTimeLimitExceeded:
        kind_limit = registry.get(job.kind).soft_time_limit_s
        return states.FAILED, None, JobTimeout(f"ran past its time limit of {kind_limit:g} s and was stopped")
    except TransientError as exc:
        log.info("job %s attempt %d hit a transient error: %s", job.id, job.attempt, exc)
        return states.RETRYING, None, exc
    except MediajobsError as exc:
        log.info("job %s failed: [%s] %s", job.id, exc.code, exc)
        return states.FAILED, None, exc
    except MemoryError:
        limit = ctx.settings.worker_memory_bytes
        log.warning("job %s (%s) ran out of memory (the worker's limit is %d bytes)", job.id, job.kind, limit)
        message = f"the job ran out of memory: a worker process may use {limit} bytes"
        return states.FAILED, None, ResourceLimit(f"{message} (MEDIAJOBS_WORKER_MEMORY_BYTES)")
    except Exception as exc:
        if is_unreachable(exc):  # the handler's own database work met an outage: worth another attempt
            log.info("job %s attempt %d: the database was unreachable: %s", job.id, job.attempt, exc)
            error = TransientError(
                "the database was unreachable while the job ran", code="database_unreachable"
            )
            return states.RETRYING, None, error
        log.exception("job %s (%s) crashed", job.id, job.kind)
        return states.FAILED, None, MediajobsError(f"{type(exc).__name__}: {exc}")


def _record(ctx: JobContext, job: Job, state: str, result: Any, error: MediajobsError | None) -> None:
    """Write how the attempt ended, waiting out a database outage for up to the grace."""
    grace_s = ctx.settings.db_outage_grace_s
    try:
        _write_outcome(ctx, job, state, result, error, grace_s)
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        log.error(
            "job %s: the database stayed unreachable for %g s; its outcome (%s) is lost and the reaper "
            "re-runs it once the database is back",
            job.id,
            grace_s,
            state,
        )


def _waits(db: Database, job: Job) -> bool:
    """Whether the fan-out committed though its answer was lost (an outage): its children exist."""
    row = rows.get_job(db, job.id)
    return row.attempt == job.attempt and row.fan_phase == fanout.WAITING


def _write_outcome(
    ctx: JobContext, job: Job, state: str, result: Any, error: MediajobsError | None, grace_s: float
) -> None:
    services, db = ctx.services, ctx.db
    if state == WAITING:
        waiting = ride_through(
            lambda: lifecycle.wait_for_children(services, job_id=job.id, attempt=job.attempt, fan=result),
            grace_s=grace_s,
            what=f"the fan-out of job {job.id}",
        )
        if waiting is not None or _waits(db, job):
            return
        # Not running this attempt any more, or a cancel came before its children existed.
        state, result = states.CANCELLED, None
        error = JobCancelled("cancelled by request before its child jobs started")
    if ctx.handing_back and state != states.SUCCEEDED:
        handed = ride_through(
            lambda: lifecycle.hand_back(services, job_id=job.id, attempt=job.attempt),
            grace_s=grace_s,
            what=f"the hand-back of job {job.id}",
        )
        if handed is not None:
            return
        # Not running this attempt any more, or a cancel came meanwhile: it ends as it would have.
    err = {"code": error.code, "message": error.message} if error is not None else None
    if state == states.RETRYING:
        assert err is not None
        if job.attempt < job.max_attempts and not ctx.cancel_event.is_set():
            kind = registry.get(job.kind) if job.kind in registry else None
            delay = backoff_s(ctx.settings, job.attempt, kind)
            err["message"] += f" (attempt {job.attempt} of {job.max_attempts}; next in {delay:g} s)"
            ride_through(
                lambda: lifecycle.schedule_retry(
                    services, job_id=job.id, attempt=job.attempt, error=err, delay_s=delay
                ),
                grace_s=grace_s,
                what=f"the retry of job {job.id}",
            )
            return
        state = states.FAILED
    ride_through(
        lambda: lifecycle.finish(
            services, job_id=job.id, attempt=job.attempt, state=state, result=result, error=err
        ),
        grace_s=grace_s,
        what=f"the outcome of job {job.id}",
    )
