"""What a running job sees: its params, progress reporting, cancellation, a private temp directory.

A watcher thread per worker process polls the job row for cancel requests and writes heartbeats, so a job is
told to stop within a fraction of a second even while it waits on a subprocess.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mediajobs.config import Settings
from mediajobs.db.session import Database
from mediajobs.errors import JobCancelled
from mediajobs.jobs import service

log = logging.getLogger(__name__)


class JobContext:
    """Handed to every job handler as its first argument."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        job_id: str,
        attempt: int,
        kind: str,
        media_id: str | None,
        max_attempts: int,
    ) -> None:
        self.db = db
        self.settings = settings
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
        self._temp_dir: Path | None = None
        self._lock = threading.Lock()

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
            if stage is not None:
                self._stage = stage
            # Stage changes are written at once; plain progress at most every 0.5 s.
            if not stage_changed and now - self._last_write < 0.5 and percent < 100.0:
                return
            self._last_write = now
        if eta_seconds is None:
            eta_seconds = self._estimate_eta(percent, now)
        service.report_progress(
            self.db,
            job_id=self.job_id,
            attempt=self.attempt,
            progress=round(percent, 2),
            stage=self._stage,
            eta_seconds=eta_seconds,
        )

    def stage(self, text: str) -> None:
        self.progress(self._progress, text)

    def _estimate_eta(self, percent: float, now: float) -> float | None:
        elapsed = now - self._started
        if percent < 1.0 or elapsed < 1.0:
            return None
        return round(elapsed * (100.0 - percent) / percent, 1)

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled("the job was cancelled")

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once with JobCancelled when the job is cancelled."""
        if self.cancel_event.wait(seconds):
            raise JobCancelled("the job was cancelled")

    @property
    def temp_dir(self) -> Path:
        """A directory private to this attempt, removed when the attempt ends however it ends."""
        if self._temp_dir is None:
            root = self.settings.effective_temp_dir
            root.mkdir(parents=True, exist_ok=True)
            # The pid in the name lets a sweep tell the directories of dead workers from live ones.
            prefix = f"job-{self.job_id[:8]}-{os.getpid()}-"
            self._temp_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
        return self._temp_dir

    def cleanup(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def enqueue(self, kind: str, params: dict[str, Any], *, media_id: str | None = None) -> str:
        """Create a follow-up job (published by the relay right after this transaction)."""
        from mediajobs.jobs.dispatch import create_and_publish

        job = create_and_publish(self.db, kind=kind, params=params, media_id=media_id or self.media_id)
        return job.id


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
    """One thread per process: heartbeats for running jobs and their cancel requests."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._active: dict[str, tuple[JobContext, float]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

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
            for job_id, (ctx, last_beat) in active:
                try:
                    if service.cancel_requested(self.db, job_id=job_id):
                        ctx.cancel_event.set()
                    if time.monotonic() - last_beat >= self.settings.heartbeat_interval_s:
                        service.heartbeat(self.db, job_id=job_id, attempt=ctx.attempt)
                        with self._lock:
                            if job_id in self._active:
                                self._active[job_id] = (ctx, time.monotonic())
                except Exception:  # a database blip must not kill the watcher; the next round tries again
                    log.warning("watcher could not check job %s", job_id, exc_info=True)
