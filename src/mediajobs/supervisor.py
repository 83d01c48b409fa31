"""`mediajobs up`: one supervisor for the managed Redis, the API and the workers.

Every part runs as a child in its own process group. A part that dies is restarted (with backoff) and the log
says so; Ctrl-C or SIGTERM stops the API and workers first, then Redis, and kills whatever remains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import redis

from mediajobs.config import Settings
from mediajobs.db.migrate import migrate
from mediajobs.db.session import get_db

log = logging.getLogger("mediajobs.up")


@dataclass
class Part:
    name: str
    argv: list[str]
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)


class Supervisor:
    def __init__(
        self, settings: Settings, *, stop_timeout_s: float = 10.0, insecure_no_auth: bool = False
    ) -> None:
        self.settings = settings
        self.stop_timeout_s = stop_timeout_s
        self.stopping = threading.Event()
        self.env = dict(os.environ)
        self.parts: list[Part] = []
        python = [sys.executable, "-m", "mediajobs"]
        if settings.managed_broker:
            self.env["MEDIAJOBS_BROKER_URL"] = settings.effective_broker_url
            self.redis: Part | None = Part("redis", self._redis_argv())
        else:
            self.redis = None
        self.env["MEDIAJOBS_DATA_DIR"] = str(settings.data_dir)
        self.parts = [
            Part(
                "api", [*python, "api", "--no-migrate", *(["--insecure-no-auth"] if insecure_no_auth else [])]
            ),
            Part(
                "worker[cpu]",
                [
                    *python,
                    "worker",
                    "--queues",
                    "cpu",
                    "--no-migrate",
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
                    "--concurrency",
                    str(settings.effective_io_concurrency),
                ],
            ),
        ]

    def _redis_argv(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (run `make up`, or set MEDIAJOBS_BROKER_URL)")
        redis_dir = self.settings.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        return [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.settings.managed_broker_port),
            "--dir",
            str(redis_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            # As a broker Redis must never evict a message to make room.
            "--maxmemory-policy",
            "noeviction",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--logfile",
            str(redis_dir / "redis.log"),
        ]

    def _start(self, part: Part) -> None:
        part.proc = subprocess.Popen(part.argv, env=self.env, start_new_session=True)
        part.started_at = time.monotonic()
        log.info("started %s (pid %d)", part.name, part.proc.pid)

    def _wait_for_redis(self, timeout_s: float = 10.0) -> None:
        client = redis.Redis.from_url(self.settings.effective_broker_url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                client.ping()
                return
            time.sleep(0.1)
        raise SystemExit(
            f"the managed redis-server did not answer on port {self.settings.managed_broker_port} "
            f"within {timeout_s:g} s; see {self.settings.data_dir / 'redis' / 'redis.log'}"
        )

    def run(self) -> int:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        try:
            if self.redis is not None:
                self._start(self.redis)
                self._wait_for_redis()
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
