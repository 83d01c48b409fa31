from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mediajobs import process
from mediajobs.errors import JobCancelled, JobTimeout, ProcessFailed
from tests.servers import wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_run_streams_lines_to_the_callback_in_order() -> None:
    lines: list[str] = []
    result = process.run(
        ["sh", "-c", "for i in 1 2 3; do echo line $i; done; echo oops >&2"],
        on_stdout=lines.append,
        capture_stdout=True,
    )
    assert lines == ["line 1", "line 2", "line 3"]
    assert result.stdout == "line 1\nline 2\nline 3"
    assert result.stderr_tail == "oops"


def test_nonzero_exit_raises_with_the_tail_of_stderr() -> None:
    with pytest.raises(ProcessFailed, match="exited with 3: bad input"):
        process.run(["sh", "-c", "echo 'bad input' >&2; exit 3"])


def test_cancel_kills_the_whole_process_group() -> None:
    cancel = threading.Event()
    pids: list[int] = []

    def on_line(line: str) -> None:
        pids.extend(int(p) for p in line.split())
        cancel.set()

    # The shell starts a grandchild in the same group; both must go.
    script = "sleep 300 & echo $$ $!; wait"
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        process.run(["sh", "-c", script], on_stdout=on_line, cancel=cancel)
    assert time.monotonic() - started < 2.0
    assert len(pids) == 2
    wait_for(lambda: not any(alive(p) for p in pids), timeout_s=2, message="the group to be gone")


def test_timeout_kills_the_child_and_says_so() -> None:
    with pytest.raises(JobTimeout, match=r"longer than 0\.3 s"):
        process.run(["sleep", "30"], timeout_s=0.3)


def test_exception_in_a_callback_kills_the_child() -> None:
    pids: list[int] = []

    def explode(line: str) -> None:
        pids.append(int(line))
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        process.run(["sh", "-c", "echo $$; exec sleep 300"], on_stdout=explode)
    wait_for(lambda: not alive(pids[0]), timeout_s=2, message="the child to be gone")


def test_child_dies_with_its_parent_even_on_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    code = (
        f"from mediajobs import process\nprocess.run(['sh', '-c', 'echo $$ > {pidfile}; exec sleep 300'])\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    child = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), message="child pid"))  # type: ignore[arg-type]
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_for(lambda: not alive(child), timeout_s=2, message="the orphan to die with its parent")


def test_current_cancel_applies_without_passing_it() -> None:
    cancel = threading.Event()
    cancel.set()
    with process.cancellable(cancel), pytest.raises(JobCancelled):
        process.run(["sleep", "30"])
