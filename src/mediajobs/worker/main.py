"""Running a Celery worker process for some queues, with the maintenance loop in its main process.

Stopping (SIGTERM or Ctrl-C: Celery's warm shutdown) takes no new messages and lets running jobs go on for
`shutdown_grace_s`; the pool children hand back what will not finish by then (see `runner`), and the worker
exits once every job has finished or been handed back.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import signal
import socket
import time
import warnings
from typing import Any

from celery.exceptions import SecurityWarning
from celery.signals import worker_process_init, worker_ready, worker_shutdown, worker_shutting_down

from mediajobs import bootstrap
from mediajobs.broker import QUEUES
from mediajobs.config import get_settings
from mediajobs.db.migrate import migrate
from mediajobs.db.session import get_db
from mediajobs.jobs.maintenance import Maintenance
from mediajobs.media import uploads
from mediajobs.nodes import WORKER, Recorder, local_worker_name, set_worker_name
from mediajobs.worker import runner  # imported here so its shared stop deadline exists before the pool forks
from mediajobs.worker.app import create_celery

log = logging.getLogger(__name__)
_maintenance: list[Maintenance] = []
_recorders: list[Recorder] = []


@worker_process_init.connect
def _child_init(**_: Any) -> None:
    # A pool child must not outlive its worker: an orphan would keep heartbeating a job nobody supervises.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    _bound_memory(get_settings().worker_memory_bytes)


def _bound_memory(limit: int) -> None:
    """Cap this pool process's address space: what a job holds in memory (a stranger's answer, say) fails
    that job with MemoryError instead of growing the worker. Only the soft limit: the children a job starts
    raise theirs to MEDIAJOBS_CHILD_MEMORY_BYTES."""
    if limit <= 0:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not limit the worker's memory to %d bytes: %s", limit, exc)


@worker_ready.connect
def _start_maintenance(**_: Any) -> None:
    services = bootstrap.services(get_settings())
    # Expired uploads are swept by every process, workers too: an API-less moment still frees the storage.
    _maintenance.append(Maintenance(services, sweep_temp=True, chores=[uploads.chore(services)]).start())
    name = local_worker_name()
    if name is not None:  # started by run_worker (not by a bare `celery worker`)
        _recorders.append(Recorder(services.db, services.settings, role=WORKER, name=name).start())


@worker_shutting_down.connect
def _hand_back_after_grace(how: str = "Warm", **_: Any) -> None:
    # Sent from the main process's signal handler: only a store into shared memory here, no locks or logging.
    grace_s = 0.0 if how == "Cold" else get_settings().shutdown_grace_s
    runner.stop_deadline.set(time.monotonic() + grace_s)


@worker_shutdown.connect
def _stop_maintenance(**_: Any) -> None:
    for loop in _maintenance:
        loop.stop()
    for recorder in _recorders:
        recorder.stop()


def parse_queues(value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",") if q.strip()]
    unknown = [q for q in queues if q not in QUEUES]
    if unknown or not queues:
        raise ValueError(
            f"unknown queue(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(QUEUES)}"
        )
    return queues


def run_worker(
    *,
    queues: list[str],
    concurrency: int,
    loglevel: str = "INFO",
    migrate_first: bool = True,
    quiet: bool = False,
) -> None:
    settings = get_settings()
    if migrate_first:
        migrate(get_db(settings.effective_database_url))
    app = create_celery(settings)
    name = f"{'+'.join(queues)}.{os.getpid()}@{socket.gethostname()}"
    set_worker_name(name)
    # Workers run as root on purpose: each ffmpeg/ffprobe/yt-dlp child is jailed as nobody (sandbox.py),
    # which needs root. Celery warns about root whatever the reason; here it is the design, not a mistake.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    app.worker_main(
        [
            *(["--quiet"] if quiet else []),  # no banner (`mediajobs up` starts quietly)
            "worker",
            "--queues",
            ",".join(queues),
            "--concurrency",
            str(concurrency),
            "--pool",
            "prefork",
            "--hostname",
            name,
            "--loglevel",
            loglevel,
            # With heartbeats on, the worker's event dispatcher runs: heartbeat events (every 2 s) show it
            # online in Flower, and Flower's `enable_events` can turn its task events on (see broker.py).
            # Gossip and mingle (workers watching each other) are not needed: the database coordinates.
            "--without-gossip",
            "--without-mingle",
        ]
    )
