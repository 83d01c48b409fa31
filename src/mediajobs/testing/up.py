"""`mediajobs up` (the whole stack under its supervisor) as a real process, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from mediajobs.testing.servers import free_port, http_client, wait_for
from mediajobs.testing.stacks import base_env


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Up:
    """A `mediajobs up` as a real process, its output in up.log; `env` adds MEDIAJOBS_ variables."""

    def __init__(self, directory: Path, **env: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.data_dir = directory / "data"
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "up.log"
        self.env = base_env(
            **{
                "MEDIAJOBS_DATA_DIR": str(self.data_dir),
                "MEDIAJOBS_PORT": str(self.port),
                "MEDIAJOBS_API_URL": self.api_url,
                "MEDIAJOBS_IO_CONCURRENCY": "2",
                **env,
            }
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Up:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediajobs", "up"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        with http_client(timeout=1) as probe:
            wait_for(
                lambda: probe.get(f"{self.api_url}/healthz").status_code == 200,
                timeout_s=40,
                message=f"the API of `up` in {self.directory}",
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> set[int]:
        assert self.proc is not None
        return descendants(self.proc.pid)

    def pid_of(self, program: bytes) -> int:
        """The pid of the part whose command line contains `program` (e.g. b"redis-server")."""
        return next(p for p in self.pids() if program in Path(f"/proc/{p}/cmdline").read_bytes())

    def workers_of_jobs(self, ids: list[str]) -> dict[str, int]:
        """Each job's worker pid, as recorded in this stack's own database."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "mediajobs.db")) as db:
            rows = db.execute(
                f"SELECT id, worker FROM jobs WHERE id IN ({','.join('?' * len(ids))})", ids
            ).fetchall()
        return {job_id: int(worker.rsplit(":", 1)[1]) for job_id, worker in rows}

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)
