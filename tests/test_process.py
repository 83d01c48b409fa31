from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mediajobs import process
from mediajobs.errors import JobCancelled, JobTimeout, ProcessFailed, ResourceLimit
from mediajobs.sandbox import Limits
from mediajobs.testing.servers import wait_for
from tests.pids import alive


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


def test_child_over_its_memory_cap_is_reported_as_a_resource_limit() -> None:
    grab = [sys.executable, "-c", "x = bytearray(1024 * 1024 * 1024)"]

    with pytest.raises(ResourceLimit, match="ran out of memory under its limit of 256 MiB") as caught:
        process.run(grab, limits=Limits(memory_bytes=256 * 2**20))
    assert caught.value.code == "resource_limit"


def test_job_memory_cap_reaches_every_child_and_ffmpeg_says_so() -> None:
    # x264 fails its allocations under the cap; ffmpeg prints "malloc of size ... failed" and exits 1.
    encode = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=3840x2160:duration=1"]
    encode += ["-c:v", "libx264", "-preset", "medium", "-f", "null", "-"]

    with (
        process.cancellable(None, Limits(memory_bytes=400 * 2**20)),
        pytest.raises(ResourceLimit, match="memory"),
    ):
        process.run(encode)


def test_child_over_its_cpu_time_is_reported_as_a_resource_limit() -> None:
    spin = [sys.executable, "-c", "while True: pass"]

    with pytest.raises(ResourceLimit, match="used its whole CPU-time allowance of 1 s"):
        process.run(spin, limits=Limits(cpu_s=1), timeout_s=60)


def test_ffmpeg_stopping_itself_at_its_cpu_limit_is_reported_as_a_resource_limit() -> None:
    # ffmpeg catches SIGXCPU, closes its output cleanly and exits 255: only its CPU time tells why.
    encode = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:duration=600"]
    encode += ["-c:v", "libx264", "-preset", "medium", "-threads", "1", "-f", "null", "-"]

    with pytest.raises(
        ResourceLimit, match="ffmpeg was stopped: it used its whole CPU-time allowance of 1 s"
    ):
        process.run(encode, limits=Limits(cpu_s=1), timeout_s=60)


def test_a_failure_under_limits_that_no_limit_caused_stays_a_process_failure() -> None:
    with pytest.raises(ProcessFailed, match="exited with 3"):
        process.run(["sh", "-c", "exit 3"], limits=Limits(memory_bytes=2**30, cpu_s=60))
