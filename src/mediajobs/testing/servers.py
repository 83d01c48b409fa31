"""Real servers on loopback for tests and benchmarks (redis-server, a throwaway PostgreSQL), and waiting."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import httpx
import psycopg

DATABASES = 4096  # per redis-server: one fresh database per stack (RedisServer.new_url)


@cache
def tls() -> ssl.SSLContext:
    """One TLS context per process for every test client: httpx builds one per client otherwise, loading the
    system's CA bundle each time (27 ms of CPU; a wait polling `httpx.get` spent that on every try)."""
    return ssl.create_default_context()


def http_client(**kwargs: object) -> httpx.Client:
    """An httpx client for a test or a benchmark (the process's shared TLS context)."""
    return httpx.Client(verify=tls(), **kwargs)  # type: ignore[arg-type]


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


def binary(name: str) -> str:
    """The path of a server program (PostgreSQL's live outside PATH on Debian)."""
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
                binary("redis-server"),
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
        self._run([binary("initdb"), "-D", str(data), "-A", "trust", "-U", "mediajobs", "--no-sync"])
        self.resume()
        return self

    def halt(self) -> None:
        """Stop the cluster as an outage would (its clients' connections break); `resume` starts it again."""
        self._run([binary("pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop"])

    def resume(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += " -c max_connections=300"
        data, log = str(self.directory / "data"), str(self.directory / "log")
        self._run([binary("pg_ctl"), "-D", data, "-w", "-l", log, "-o", options, "start"])

    def create_database(self, name: str) -> str:
        with psycopg.connect(
            f"postgresql://mediajobs@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://mediajobs:secret-pw@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run([binary("pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.directory, ignore_errors=True)
