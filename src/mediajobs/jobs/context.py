"""What a running job sees: its params, progress reporting, cancellation, a private temp directory.

A watcher thread per worker process polls the job row for cancel requests and writes heartbeats, so a job is
told to stop within a fraction of a second even while it waits on a subprocess. While the database is
unreachable, progress and heartbeats are skipped (the job keeps working) and resume when it is back. When the
worker stops, the watcher hands back the jobs that will not finish by its deadline (their ETA says so, or it
came).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mediajobs.config import Settings
from mediajobs.db.session import Database, is_unreachable
from mediajobs.errors import JobCancelled, MediajobsError
from mediajobs.jobs import fanout, lifecycle, rows
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.registry import registry

log = logging.getLogger(__name__)


class JobContext:
    """Handed to every job handler as its first argument.

    `ctx.db` and `ctx.settings` are the process's; `ctx.services` carries them with the broker, for code that
    moves jobs or assets (`lifecycle`, `assets.update_media`).
    """

    def __init__(
        self,
        *,
        services: Services,
        job_id: str,
        attempt: int,
        kind: str,
        media_id: str | None,
        max_attempts: int,
    ) -> None:
        self.services = services
        self.db = services.db
        self.settings = services.settings
        self.job_id = job_id
        self.attempt = attempt
        self.kind = kind
        self.media_id = media_id
        self.max_attempts = max_attempts
        self.cancel_event = threading.Event()
        self._progress = 0.0
        self._stage = ""
        self._last_write = 0.0
        self._started = time.monotonic()
        # (monotonic time, percent) of the attempt's first report past 0 %: the ETA extrapolates the pace
        # since then, not since the start, so a slow first step reported as a few percent does not skew it.
        self._pace_from: tuple[float, float] | None = None
        self._temp_dir: Path | None = None
        self._temp_lock = threading.Lock()
        # Directories outside the temp dir that the job's jailed children may read (`allow_reading`).
        self.readable: list[Path] = []
        self._lock = threading.Lock()
        # When the last ETA says the attempt will end (monotonic), for a stopping worker's hand-back.
        self.expected_end: float | None = None
        # Set (with cancel_event) when a stopping worker gives the job back to the queue instead.
        self.handing_back = False
        # Set (with cancel_event) when another attempt runs the job now (this one's heartbeats were missed).
        self.taken_over = False

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    def progress(self, percent: float, stage: str | None = None, *, eta_seconds: float | None = None) -> None:
        """Report progress (0-100, kept monotonic within the attempt) and optionally a new stage text."""
        self.check_cancelled()
        percent = max(self._progress, min(100.0, float(percent)))
        stage_changed = stage is not None and stage != self._stage
        now = time.monotonic()
        with self._lock:
            self._progress = percent
            if self._pace_from is None and percent > 0.0:
                self._pace_from = (now, percent)
            if stage is not None:
                self._stage = stage
            # Stage changes are written at once; plain progress at most every 0.5 s.
            if not stage_changed and now - self._last_write < 0.5 and percent < 100.0:
                return
            self._last_write = now
        if eta_seconds is None:
            eta_seconds = self._estimate_eta(percent, now)
        self.expected_end = now + eta_seconds if eta_seconds is not None else None
        try:
            rows.record_progress(
                self.db,
                job_id=self.job_id,
                attempt=self.attempt,
                progress=round(percent, 2),
                stage=self._stage,
                eta_seconds=eta_seconds,
            )
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            # An outage must not cost the work done: the next report after it carries the progress.
            log.info("job %s: progress not recorded, the database is unreachable", self.job_id)

    def stage(self, text: str) -> None:
        self.progress(self._progress, text)

    def _estimate_eta(self, percent: float, now: float) -> float | None:
        return estimate_eta(percent, now, self._started, self._pace_from)

    def hand_back(self) -> None:
        """Stop the work (subprocesses included) so that the job goes back to the queue on this attempt."""
        self.handing_back = True
        self.cancel_event.set()

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled("the job was cancelled")

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once with JobCancelled when the job is cancelled."""
        if self.cancel_event.wait(seconds):
            raise JobCancelled("the job was cancelled")

    @property
    def temp_dir(self) -> Path:
        """A directory private to this attempt, removed when the attempt ends however it ends.

        Made on first use, once: threads of the job (fast start's scan ahead) may ask at the same time."""
        with self._temp_lock:
            if self._temp_dir is None:
                root = self.settings.effective_temp_dir
                root.mkdir(parents=True, exist_ok=True)
                # The pid in the name lets a sweep tell the directories of dead workers from live ones.
                prefix = f"job-{self.job_id[:8]}-{os.getpid()}-"
                self._temp_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
            return self._temp_dir

    def allow_reading(self, directory: Path) -> None:
        """Let the children this job starts from now on read `directory` (stored files read in place): it is
        shown to them read-only, as their temp dir is shown read-write."""
        if directory not in self.readable:
            self.readable.append(directory)

    def cleanup(self) -> None:
        with self._temp_lock:
            if self._temp_dir is not None:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
                self._temp_dir = None

    def enqueue(self, kind: str, params: dict[str, Any], *, media_id: str | None = None) -> str:
        """Create a follow-up job, published once committed; params that do not fit its kind fail this job.

        The failure is `invalid_params` (a ParamsRejected raised from here), at once rather than in the
        follow-up when it runs.
        """
        job = lifecycle.submit(self.services, kind=kind, params=params, media_id=media_id or self.media_id)
        return job.id

    def transaction(self) -> contextlib.AbstractContextManager[lifecycle.Transaction]:
        """A write transaction of the handler's own: what it writes in `tx.session` and the follow-up jobs it
        creates with `tx.submit(kind, params)` (of the job's asset unless told) commit together, and the jobs
        are published once it has committed. Params that do not fit fail this job as with `enqueue`, and
        nothing of the transaction is written; nor is anything when the database goes away meanwhile.
        """
        return lifecycle.transaction(self.services, media_id=self.media_id)

    def fan_out(
        self,
        children: Iterable[fanout.Child | tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], float]],
        *,
        then: str | None = None,
        span: tuple[float, float] = (0.0, 100.0),
    ) -> fanout.FanOut:
        """What the handler returns to end its job once these child jobs (kind, params[, weight]) have.

        The worker slot is freed at once; the children are created and published when the handler returns.
        If every child succeeds the job succeeds, or with `then` (a registered kind) runs that kind's handler
        as a new attempt, with this job's params and `ctx.child_results()`. Invalid child params fail this
        job with `invalid_params`, more than MEDIAJOBS_MAX_CHILDREN children with `too_many_children`.
        While they run, the job's progress goes from `span[0]` to `span[1]` as theirs (weighted) does; a
        join's own progress fills the rest up to 100.
        """
        items = tuple(c if isinstance(c, fanout.Child) else fanout.Child(*c) for c in children)
        limit = self.settings.max_children
        if len(items) > limit:
            raise MediajobsError(
                f"the job fans out to {len(items)} child jobs; at most {limit} (MEDIAJOBS_MAX_CHILDREN)",
                code="too_many_children",
            )
        for position, child in enumerate(items):
            try:
                lifecycle.check_params(child.kind, child.params)
            except lifecycle.ParamsRejected as exc:
                raise lifecycle.ParamsRejected(child.kind, f"child {position}: {exc}", exc.errors) from exc
            if not child.weight > 0:
                raise MediajobsError(f"child {position}: weight must be above 0", code="invalid_params")
        if then is not None and then not in registry:
            raise MediajobsError(f"then: unknown kind {then!r}", code="invalid_params")
        if not 0.0 <= span[0] <= span[1] <= 100.0:
            raise MediajobsError(f"span {span} must be two percentages in order", code="invalid_params")
        return fanout.FanOut(items, then, span)

    def child_results(self) -> list[Any]:
        """In a join: the results of this job's children, in the order they were given to fan_out."""
        return fanout.child_results(self.db, self.job_id)


class Phase:
    """Maps a step's 0..1 fraction onto a slice of the job's 0-100 % with one stage text."""

    def __init__(self, ctx: JobContext, start: float, end: float, stage: str) -> None:
        self.ctx, self.start, self.end, self.stage = ctx, start, end, stage
        ctx.progress(start, stage)

    def __call__(self, fraction: float) -> None:
        self.ctx.progress(self.start + (self.end - self.start) * fraction, self.stage)


def sweep_temp_dirs(root: Path) -> int:
    """Remove job temp directories whose worker process is gone (killed mid-job); returns how many."""
    removed = 0
    if not root.is_dir():
        return removed
    for path in root.glob("job-*-*-*"):
        pid = path.name.split("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


class Watcher:
    """One thread per process: heartbeats for running jobs, their cancel requests, hand-back on stop.

    `stop_deadline()` is when a stopping worker wants its jobs back (monotonic), None while it is not
    stopping.
    """

    def __init__(
        self, db: Database, settings: Settings, stop_deadline: Callable[[], float | None] | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.stop_deadline = stop_deadline or (lambda: None)
        self._active: dict[str, tuple[JobContext, float]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._unreachable = False

    def add(self, ctx: JobContext) -> None:
        with self._lock:
            self._active[ctx.job_id] = (ctx, time.monotonic())
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mediajobs-watcher", daemon=True)
                self._thread.start()

    def remove(self, ctx: JobContext) -> None:
        with self._lock:
            self._active.pop(ctx.job_id, None)

    def _run(self) -> None:
        poll = self.settings.cancel_poll_interval_s
        while True:
            time.sleep(poll)
            with self._lock:
                active = list(self._active.items())
            deadline = self.stop_deadline()
            for job_id, (ctx, last_beat) in active:
                if deadline is not None and not ctx.handing_back and _misses(ctx, deadline):
                    log.info("worker stopping: handing job %s back to the queue", job_id)
                    ctx.hand_back()
                try:
                    if rows.cancel_requested(self.db, job_id=job_id):
                        ctx.cancel_event.set()
                    if time.monotonic() - last_beat >= self.settings.heartbeat_interval_s:
                        if not rows.record_heartbeat(self.db, job_id=job_id, attempt=ctx.attempt):
                            # Re-run elsewhere (its heartbeats were missed, e.g. this host lost its link) or
                            # ended: whatever it would still do or store is no one's any more.
                            log.warning("job %s attempt %d was taken over: stopping it", job_id, ctx.attempt)
                            ctx.taken_over = True
                            ctx.cancel_event.set()
                        with self._lock:
                            if job_id in self._active:
                                self._active[job_id] = (ctx, time.monotonic())
                    if self._unreachable:
                        log.info("watcher: the database is reachable again; heartbeats resume")
                        self._unreachable = False
                except (
                    Exception
                ) as exc:  # a database blip must not kill the watcher; the next round tries again
                    if not is_unreachable(exc):
                        log.warning("watcher could not check job %s", job_id, exc_info=True)
                    elif not self._unreachable:
                        log.warning("watcher: database unreachable (%s); heartbeats wait for it", exc)
                        self._unreachable = True


def _misses(ctx: JobContext, deadline: float) -> bool:
    """Whether the job will not end by `deadline`: the deadline came, or its ETA says it ends after it."""
    now = time.monotonic()
    return now >= deadline or (ctx.expected_end is not None and ctx.expected_end > deadline)


def estimate_eta(
    percent: float, now: float, started: float, pace_from: tuple[float, float] | None
) -> float | None:
    """Seconds left at `percent` %: the pace since `pace_from` (time, percent), the first report past 0 %,
    once a point or more was made over a second or more since then; None before (a step reported as a few
    percent may take any time). Without a report past 0 %, the pace since `started`."""
    if pace_from is not None:
        since, base = pace_from
        if now - since >= 1.0 and percent - base >= 1.0:
            return round(max(0.0, (100.0 - percent) * (now - since) / (percent - base)), 1)
        return None
    elapsed = now - started
    if percent < 1.0 or elapsed < 1.0:
        return None
    return round(elapsed * (100.0 - percent) / percent, 1)
