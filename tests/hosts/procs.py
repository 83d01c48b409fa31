"""Processes in hosts: a command and its log, a PostgreSQL cluster, a client that knows the hosts' names."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx

from mediajobs.testing.servers import binary, wait_for
from mediajobs.testing.stacks import base_env
from tests.hosts.netns import Host, Network

VENV_BIN = Path(sys.executable).parent
PG_PORT = 5432


class Exited(Exception):
    """A process that was being waited for exited."""


class Proc:
    """A command running in a host, in its own process group, its output in `<host data>/<name>.log`."""

    def __init__(
        self,
        host: Host,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        stop_signal: int = signal.SIGTERM,
        cpus: str | None = None,
    ) -> None:
        self.host, self.name, self.argv, self.env = host, name, argv, env
        self.stop_signal = stop_signal
        self.cpus = cpus
        self.log_path = host.root / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def start(self) -> Proc:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed when the process is reaped
        self.popen = subprocess.Popen(
            self.host.argv(self.argv, cpus=self.cpus),
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.host.pgids.add(self.popen.pid)
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, predicate: Callable[[], object], *, timeout_s: float, what: str) -> None:
        """Poll `predicate` until truthy; fail at once, with the log, if the process exits meanwhile."""

        def check() -> object:
            if not self.alive:
                raise Exited(f"{self.host.name}/{self.name} exited ({self.popen and self.popen.returncode})")
            return predicate()

        try:
            wait_for(check, timeout_s=timeout_s, message=what)
        except (AssertionError, Exited) as exc:
            raise AssertionError(f"{exc}; the log of {self.host.name}/{self.name}:\n{self.log()}") from None

    def log(self, tail_chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail_chars:]
        except OSError:
            return ""

    def wait_exit(self, timeout_s: float) -> int | None:
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if self.popen.poll() is not None:
                self._close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """The stop signal to the process group, then SIGKILL if it has not exited within `timeout_s`."""
        if self.popen is None:
            return
        for sig, wait_s in ((self.stop_signal, timeout_s), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            self.wait_exit(wait_s)
        self._close()

    def _close(self) -> None:
        if self.popen is not None:
            self.host.pgids.discard(self.popen.pid)
        if self._log is not None:
            self._log.close()
            self._log = None


def tcp_open(address: str, port: int) -> bool:
    with socket.create_connection((address, port), timeout=1):
        return True


class HostsTransport(httpx.HTTPTransport):
    """Resolves the hosts' names as their /etc/hosts does, for a client outside them (the test process).

    The request keeps its Host header (and so its signature, for a presigned S3 URL); only the address
    connected to changes.
    """

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.addresses = {n: h.address for h in network.hosts.values() for n in (h.name, *h.aliases)}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        address = self.addresses.get(request.url.host)
        if address is not None:
            request.url = request.url.copy_with(host=address)
        return super().handle_request(request)


class Postgres:
    """A PostgreSQL cluster in `host`, run as the postgres user, answering on the bridge with a password."""

    def __init__(self, host: Host, *, user: str, password: str, database: str) -> None:
        self.host, self.user, self.password, self.database = host, user, password, database
        self.directory = host.data / "postgres"
        self.proc: Proc | None = None

    def url(self, address: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{address}:{PG_PORT}/{self.database}"

    def start(self) -> Postgres:
        owner = pwd.getpwnam("postgres")
        self.directory.mkdir(mode=0o700)
        os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        pwfile = self.host.tmp / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        # setpriv execs in place (runuser would stay as the parent): the process waited for is the postmaster.
        as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        initdb = [binary("initdb"), "-D", str(self.directory), "-U", self.user, "--pwfile", "/tmp/pwfile"]
        self.host.run([*as_postgres, *initdb, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
        pwfile.unlink()
        with open(self.directory / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.host.network.subnet} scram-sha-256\n")
        server = [binary("postgres"), "-D", str(self.directory), "-p", str(PG_PORT), "-k", "/tmp"]
        server += ["-c", "listen_addresses=*", "-c", "fsync=off", "-c", "max_connections=200"]
        # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
        self.proc = Proc(
            self.host, "postgres", [*as_postgres, *server], base_env(), stop_signal=signal.SIGINT
        )
        self.proc.start()
        self.host.on_destroy.append(self.stop)
        return self

    def stop(self) -> None:
        """Fast shutdown; the postmaster removes its pid file last, after its shared memory."""
        if self.proc is not None:
            self.proc.stop(timeout_s=15)
        pidfile = self.directory / "postmaster.pid"
        wait_for(lambda: not pidfile.exists(), timeout_s=15, message="PostgreSQL to have shut down")

    def create_database(self) -> None:
        import psycopg

        admin = self.url(self.host.address).rsplit("/", 1)[0] + "/postgres"

        def answers() -> bool:
            psycopg.connect(admin, connect_timeout=1).close()
            return True

        wait_for(answers, message="PostgreSQL")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
