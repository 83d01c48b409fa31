"""Processes seen from /proc: whether one still runs, and the pid a job's child wrote for the test."""

from __future__ import annotations

from pathlib import Path

from mediajobs.testing.servers import wait_for


def alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie has exited, only its parent has not collected it yet."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def read_pid(path: Path) -> int:
    """The pid in `path`, once something has written it there."""
    return int(wait_for(lambda: path.exists() and path.read_text().strip(), message="the child pid"))  # type: ignore[arg-type]
