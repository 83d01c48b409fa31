"""Real servers for the tests: redis-server, a throwaway PostgreSQL cluster, the mediajobs API and workers."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
DATABASES = 4096  # per test redis-server: one fresh database per stack (RedisServer.new_url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GiveUp(Exception):
    """Raised by a `wait_for` predicate when waiting longer cannot help (the process it waits on exited)."""


def wait_for(
    predicate: Callable[[], object],
    *,
    timeout_s: float = 20.0,
    interval_s: float | None = None,
    message: str = "condition",
) -> object:
    """Poll until `predicate()` is truthy; the outcome, not a fixed sleep, decides.

    The predicate is tried a last time at the deadline. Without `interval_s` the gap between tries starts at
    20 ms and grows to 250 ms: a quick outcome is seen at once, and a long wait costs little CPU (most
    predicates ask the API, and every question is a request it serves).
    """
    deadline = time.monotonic() + timeout_s
    gap = interval_s or 0.02
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except GiveUp:
            raise
        except Exception as exc:
            last_exc = exc
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(gap, left))
        if interval_s is None:
            gap = min(gap * 1.5, 0.25)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {message} (last error: {last_exc})")


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if not found:
        raise RuntimeError(f"{name} is not installed; run `make test`, which installs it")
    return str(found)


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._databases = 0

    def new_url(self) -> str:
        """The URL of a database no other stack of this run has used: two stacks never share a broker, and no
        stack sees messages an earlier test left behind."""
        self._databases += 1
        if self._databases >= DATABASES:
            raise RuntimeError(f"redis-server on {self.port} has only {DATABASES} databases")
        return f"redis://127.0.0.1:{self.port}/{self._databases}"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                _binary("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.directory),
                "--maxmemory-policy",
                "noeviction",
                "--databases",
                str(DATABASES),
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self.ping, message=f"redis-server on {self.port}")
        return self

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class PostgresServer:
    """A throwaway cluster; PostgreSQL refuses to run as root, so it runs as the postgres user."""

    def __init__(self) -> None:
        # Not under pytest's tmp dirs: those are private to root, and the cluster runs as postgres.
        self.directory = Path(tempfile.mkdtemp(prefix="mediajobs-pg-"))
        self.port = free_port()
        self.user: str | None = "postgres" if os.geteuid() == 0 else None

    def _run(self, argv: list[str]) -> None:
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PostgresServer:
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.directory, pw.pw_uid, pw.pw_gid)
        data = self.directory / "data"
        self._run([_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "mediajobs", "--no-sync"])
        self._run(
            [
                _binary("pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-l",
                str(self.directory / "log"),
                "-o",
                f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=300",
                "start",
            ]
        )
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"postgresql://mediajobs@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://mediajobs:secret-pw@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run([_binary("pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.directory, ignore_errors=True)


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAJOBS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


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
        self._logs: list[object] = []

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
            return httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200

        wait_for(answering, message="the API to answer /healthz")

    def start_worker(self, queues: str = "io,cpu,default", concurrency: int = 2) -> subprocess.Popen[bytes]:
        proc = self._spawn(
            f"worker-{len(self.workers)}",
            ["worker", "--queues", queues, "--concurrency", str(concurrency), "--no-migrate"],
        )
        self.workers.append(proc)
        wait_for(
            lambda: b"ready." in (self.directory / f"worker-{len(self.workers) - 1}.log").read_bytes(),
            timeout_s=30,
            message="the worker to be ready",
        )
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children, as a crashed machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=10, **kwargs)  # type: ignore[arg-type]

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
            log.close()  # type: ignore[attr-defined]

    def _procs(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in [self.api, *self.workers] if p is not None]


def stop_stacks(stacks: list[Stack], grace_s: float = 10.0) -> None:
    """Stop stacks side by side: every process is asked to stop (SIGTERM) before any is waited for, and what
    has not exited within `grace_s` is killed with its process group."""
    for stack in stacks:
        stack._terminate()
    deadline = time.monotonic() + grace_s
    for stack in stacks:
        stack._reap(deadline)
