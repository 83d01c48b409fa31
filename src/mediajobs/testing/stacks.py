"""Stacks of real mediajobs processes (an API and workers) for tests and benchmarks, and their environment.

`stack_env` is the one place a stack's environment is written: everything under the stack's directory, the
broker it is given, short engine timings for tests, and any other setting by its name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

from mediajobs.testing.servers import GiveUp, free_port, http_client, wait_for

# The source checkout (src/mediajobs/testing/ is three levels down): its `tests` and `bench` packages hold
# kind modules (MEDIAJOBS_KIND_MODULES=tests.kinds) that a stack's processes import.
CHECKOUT = Path(__file__).resolve().parents[3]
# Engine timings short enough that a test sees a lost worker, a retry or a hand-back within seconds (the
# defaults suit production, and the benchmarks measure those).
TEST_TIMINGS = {
    "MEDIAJOBS_HEARTBEAT_INTERVAL_S": "0.5",
    "MEDIAJOBS_HEARTBEAT_TIMEOUT_S": "3",
    # Stopping a stack waits at most this long for jobs to hand back.
    "MEDIAJOBS_SHUTDOWN_GRACE_S": "1",
    "MEDIAJOBS_RETRY_BACKOFF_BASE_S": "0.3",
}
# A stack's workers: (queues, pool size) each.
Workers = Sequence[tuple[str, int]]


def base_env(**variables: str) -> dict[str, str]:
    """This process's environment without MEDIAJOBS_ variables, the checkout importable, and `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAJOBS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(CHECKOUT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(variables)
    return env


def stack_env(
    directory: Path,
    *,
    broker_url: str,
    database_url: str | None = None,
    timings: Mapping[str, str] = TEST_TIMINGS,
    **settings: str,
) -> dict[str, str]:
    """The environment of a stack's processes, its files under `directory` (SQLite unless `database_url`).

    `settings` are further MEDIAJOBS_ variables by their Settings names, e.g. `kind_modules="tests.kinds"`,
    `retry_backoff_base_s="0.002"`; they win over `timings` (pass `timings={}` for the defaults).
    """
    values = {
        "MEDIAJOBS_DATABASE_URL": database_url or f"sqlite:///{directory / 'mediajobs.db'}",
        "MEDIAJOBS_BROKER_URL": broker_url,
        "MEDIAJOBS_TEMP_DIR": str(directory / "tmp"),
        **timings,
        **{f"MEDIAJOBS_{name.upper()}": value for name, value in settings.items()},
    }
    return base_env(**values)


class Stack:
    """An API and workers as real processes, with their logs in `directory`."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.port = free_port()
        self.env = {
            **env,
            "MEDIAJOBS_PORT": str(self.port),
            "MEDIAJOBS_API_URL": f"http://127.0.0.1:{self.port}",
        }
        self.env.setdefault("MEDIAJOBS_DATA_DIR", str(directory / "data"))
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(self, workers: Workers = (("io,cpu,default", 2),)) -> Stack:
        """The API, then `workers`; a stack that fails to start is stopped again."""
        try:
            self.start_api()
            for queues, concurrency in workers:
                self.start_worker(queues, concurrency)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", "mediajobs", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.directory,
        )

    def start_api(self) -> None:
        """The API upgrades the schema before it answers, so workers started after it find one."""
        api = self.api = self._spawn("api", ["api"])

        def answering() -> bool:
            if api.poll() is not None:
                raise GiveUp(f"the API exited with {api.returncode}: {self.log('api')[-1500:]}")
            return probe.get(f"{self.api_url}/healthz").status_code == 200

        # Its start (imports, migrations) took 17-20 s on a machine loaded to 40 on 2 cores; a dead API is
        # seen at once above, so a long wait costs nothing when it works.
        with http_client(timeout=1) as probe:
            wait_for(answering, timeout_s=60, message="the API to answer /healthz")

    def start_worker(self, queues: str = "io,cpu,default", concurrency: int = 2) -> subprocess.Popen[bytes]:
        proc = self._spawn(
            f"worker-{len(self.workers)}",
            ["worker", "--queues", queues, "--concurrency", str(concurrency), "--no-migrate"],
        )
        self.workers.append(proc)
        log = self.directory / f"worker-{len(self.workers) - 1}.log"

        def ready() -> bool:
            if proc.poll() is not None:
                said = log.read_text(errors="replace")[-1500:]
                raise GiveUp(f"the worker exited with {proc.returncode}: {said}")
            return b"ready." in log.read_bytes()

        # As the API's start above: a dead worker is seen at once, a slow one given the time a loaded machine
        # takes (a CI run at the end of a busy suite took more than 30 s).
        wait_for(ready, timeout_s=60, message="the worker to be ready")
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children, as a crashed machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def client(self, **kwargs: object) -> httpx.Client:
        return http_client(base_url=self.api_url, timeout=10, **kwargs)

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        stop_stacks([self])

    def _terminate(self) -> None:
        for proc in self._procs():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)

    def _reap(self, deadline: float) -> None:
        for proc in self._procs():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for log in self._logs:
            log.close()

    def _procs(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in [self.api, *self.workers] if p is not None]


def stop_stacks(stacks: Sequence[Stack], grace_s: float = 10.0) -> None:
    """Stop stacks side by side: every process is asked to stop (SIGTERM) before any is waited for, and what
    has not exited within `grace_s` is killed with its process group."""
    for stack in stacks:
        stack._terminate()
    deadline = time.monotonic() + grace_s
    for stack in stacks:
        stack._reap(deadline)
