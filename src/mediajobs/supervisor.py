"""`mediajobs up`: one supervisor for the managed Redis, the API and the workers.

Every part runs as a child in its own process group. A part that dies is restarted (with backoff) and the log
says so; Ctrl-C or SIGTERM stops the API and workers first, then Redis, and kills whatever remains. A managed
Redis that cannot start (or restart) stops `up` with the reason: nothing runs against someone else's broker.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mediajobs.config import Settings
from mediajobs.db.migrate import migrate
from mediajobs.db.session import get_db
from mediajobs.managed_redis import ManagedRedis

log = logging.getLogger("mediajobs.up")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Should `up` itself be killed, no orphan keeps the port, a queue or this data dir's Redis files.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Part:
    name: str
    argv: list[str]
    stop_signal: int = signal.SIGTERM
    stdin: bytes | None = None
    output: Path | None = None  # where its stdout and stderr go (None: the terminal)
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)


class Supervisor:
    def __init__(
        self, settings: Settings, *, stop_timeout_s: float | None = None, insecure_no_auth: bool = False
    ) -> None:
        self.settings = settings
        # Workers get their whole shutdown grace to finish or hand back jobs before anything is killed.
        self.stop_timeout_s = stop_timeout_s if stop_timeout_s is not None else settings.shutdown_grace_s + 5
        self.stopping = threading.Event()
        self.env = dict(os.environ)
        python = [sys.executable, "-m", "mediajobs"]
        # The parts find the managed Redis (socket or port, and password) in the data dir, as the CLI does.
        self.managed = ManagedRedis(settings) if settings.managed_broker else None
        self.redis = Part("redis", []) if self.managed else None
        self.env["MEDIAJOBS_DATA_DIR"] = str(settings.data_dir)
        self.parts = [
            Part(
                "api",
                [
                    *python,
                    "api",
                    "--no-migrate",
                    "--quiet",
                    *(["--insecure-no-auth"] if insecure_no_auth else []),
                ],
            ),
            Part(
                "worker[cpu]",
                [
                    *python,
                    "worker",
                    "--queues",
                    "cpu",
                    "--no-migrate",
                    "--quiet",
                    "--concurrency",
                    str(settings.effective_cpu_concurrency),
                ],
            ),
            Part(
                "worker[io,default]",
                [
                    *python,
                    "worker",
                    "--queues",
                    "io,default",
                    "--no-migrate",
                    "--quiet",
                    "--concurrency",
                    str(settings.effective_io_concurrency),
                ],
            ),
        ]

    def _start(self, part: Part) -> None:
        output = part.output.open("ab") if part.output is not None else None
        try:
            part.proc = subprocess.Popen(
                part.argv,
                env=self.env,
                stdin=subprocess.PIPE if part.stdin is not None else None,
                stdout=output,
                stderr=output,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if output is not None:
                output.close()
        if part.stdin is not None:
            assert part.proc.stdin is not None
            part.proc.stdin.write(part.stdin)
            part.proc.stdin.close()
        part.started_at = time.monotonic()
        log.debug("started %s (pid %d)", part.name, part.proc.pid)

    def _start_redis(self) -> None:
        assert self.redis is not None and self.managed is not None
        self.managed.started()
        self._start(self.redis)
        assert self.redis.proc is not None
        self.managed.wait_ready(self.redis.proc, self.stopping)

    def run(self) -> int:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        if self.redis is not None and self.managed is not None:
            self.redis.argv = self.managed.prepare()
            self.redis.stdin = self.managed.config_text()
            # What Redis says before it reads its logfile setting goes to the same file, not the terminal.
            self.redis.output = self.managed.log_path
        try:
            if self.redis is not None and self.managed is not None:
                self._start_redis()
                if self.stopping.is_set():
                    return 0
                log.debug("managed Redis listens on %s", self.managed.describe())
            migrate(get_db(self.settings.effective_database_url))
            for part in self.parts:
                self._start(part)
            log.info(
                "mediajobs is up: http://%s:%d/ (Ctrl-C stops everything)",
                self.settings.host,
                self.settings.port,
            )
            while not self.stopping.wait(0.5):
                self._keep_alive()
        finally:
            self.shutdown()
        return 0

    def _keep_alive(self) -> None:
        for part in ([self.redis] if self.redis else []) + self.parts:
            if part.proc is None or part.proc.poll() is None:
                if part.proc is None and time.monotonic() >= part.next_start:
                    if part is self.redis:
                        # A Redis that cannot come back ends `up` (SystemExit) instead of looping.
                        self._start_redis()
                    else:
                        self._start(part)
                continue
            code = part.proc.returncode
            # A part that ran a while before dying starts over at the shortest backoff.
            if time.monotonic() - part.started_at > 60:
                part.restarts = 0
            delay = min(30.0, 0.5 * 2**part.restarts)
            part.restarts += 1
            log.warning("%s exited with code %s; restarting it in %.1f s", part.name, code, delay)
            part.proc = None
            part.next_start = time.monotonic() + delay

    def _stop(self, parts: list[Part], timeout_s: float) -> None:
        running = [p for p in parts if p.proc is not None and p.proc.poll() is None]
        for part in running:
            assert part.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(part.proc.pid, part.stop_signal)
        deadline = time.monotonic() + timeout_s
        for part in running:
            assert part.proc is not None
            try:
                part.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %g s; killing it", part.name, timeout_s)
            # Whatever is left in the part's group (pool children, ffmpeg) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(part.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                part.proc.wait(timeout=5)

    def shutdown(self) -> None:
        log.info("stopping mediajobs")
        self._stop(self.parts, self.stop_timeout_s)
        if self.redis is not None:
            self._stop([self.redis], 5.0)
        log.info("stopped")
