"""The Redis that `mediajobs up` runs when no broker URL is set; it belongs to the data dir.

It listens on a unix socket in `$DATA_DIR/redis` (or, when that path is too long for a socket, on a free
loopback port recorded there) and requires a password generated once and kept there (mode 0600), so two
stacks on one machine never share a queue. A lock keeps a second `up` from starting another Redis on the
same files. Every process with the same data dir finds it through `Settings.effective_broker_url`.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from typing import IO

import redis

from mediajobs.config import BROKER_PASSWORD_FILE, BROKER_PORT_FILE, Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedRedis:
    """Prepares, checks and explains the managed redis-server; the supervisor starts and stops it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = settings.managed_broker_dir
        self.log_path = self.directory / "redis.log"
        self._lock: IO[str] | None = None
        self._password = ""
        self._log_offset = 0
        self._address = "its address"

    def prepare(self) -> list[str]:
        """Take the data dir's Redis for this `up`, make its password and address; redis-server's argv."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (run `make up`, or set MEDIAJOBS_BROKER_URL)")
        self.directory.mkdir(parents=True, exist_ok=True)
        # The socket, the password and the AOF (job ids, priorities) are this data dir's alone.
        self.directory.chmod(0o700)
        self._take_lock()
        self._password = self._load_password()
        return [
            binary,
            # The configuration comes on stdin (`config_text`): the password never shows in `ps`.
            "-",
            *self._listen_args(),
            "--dir",
            str(self.directory),
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
            str(self.log_path),
        ]

    def config_text(self) -> bytes:
        return f"requirepass {self._password}\n".encode()

    def describe(self) -> str:
        """Where it listens, for messages (no password)."""
        return self._address

    def _take_lock(self) -> None:
        lock = open(self.directory / "up.lock", "a+")  # noqa: SIM115 - held for the life of `up`
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            lock.close()
            raise SystemExit(
                f"another `mediajobs up` (pid {holder}) is running with the data dir "
                f"{self.settings.data_dir}; stop it, or give this one its own MEDIAJOBS_DATA_DIR"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _load_password(self) -> str:
        path = self.directory / BROKER_PASSWORD_FILE
        password = path.read_text().strip() if path.exists() else ""
        if not password:
            password = secrets.token_hex(24)
            partial = path.with_name(f"{path.name}.partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{password}\n")
            os.replace(partial, path)
        # Kept from an earlier run: private whatever happened to it meanwhile.
        os.chmod(path, 0o600)
        return password

    def _listen_args(self) -> list[str]:
        socket_path = self.settings.managed_broker_socket
        port_file = self.directory / BROKER_PORT_FILE
        if socket_path is not None:
            port_file.unlink(missing_ok=True)
            self._address = f"unix socket {socket_path}"
            return ["--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700"]
        port = self.settings.managed_broker_port
        if not port:
            # The socket's path would not fit in sockaddr_un: a port of its own, recorded for the others.
            port = _free_port()
            port_file.write_text(f"{port}\n")
        self._address = f"127.0.0.1:{port}"
        return ["--port", str(port), "--bind", "127.0.0.1"]

    def started(self) -> None:
        """Remember where the log ends, so that a failure is explained by this start's own lines."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0

    def wait_ready(
        self, proc: subprocess.Popen[bytes], stopping: threading.Event, timeout_s: float = 10
    ) -> None:
        """Return once `proc` answers at the data dir's address; exit `up`, saying why, when it cannot."""
        client = redis.Redis.from_url(
            self.settings.broker_client_url, socket_connect_timeout=0.5, socket_timeout=2
        )
        deadline = time.monotonic() + timeout_s
        try:
            while not stopping.is_set():
                if proc.poll() is not None:
                    raise SystemExit(
                        f"the managed redis-server could not start (exit code {proc.returncode}): "
                        f"{self._reason()}; see {self.log_path}"
                    )
                try:
                    pid = int(client.info("server")["process_id"])
                except redis.BusyLoadingError:
                    deadline = time.monotonic() + timeout_s  # replaying its AOF: alive, just slow
                except redis.RedisError:
                    pass
                else:
                    if pid == proc.pid:
                        return
                    raise SystemExit(
                        f"{self.describe()} is answered by another Redis (pid {pid}), "
                        "not the one `up` started"
                    )
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"the managed redis-server did not answer on {self.describe()} "
                        f"within {timeout_s:g} s; see {self.log_path}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _reason(self) -> str:
        """The last warning redis-server logged since it was started (it marks them with ` # `)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            lines = []
        warnings = [line.split(" # ", 1)[1].strip() for line in lines if " # " in line]
        # Its last words are "aborting"; the one before says why (the address in use, the path too long).
        return "; ".join(warnings[-2:] or lines[-1:] or ["it wrote nothing to its log"])
