"""The one subprocess runner: every ffmpeg, ffprobe and yt-dlp call goes through `run`.

Each child starts in its own process group (so the whole group can be killed, helpers included) and with a
parent-death signal (so a pool child killed by a hard time limit takes its subprocesses with it). Output is
read line by line and handed to callbacks in the caller's thread; cancellation, timeouts and any exception
raised while waiting (Celery's SoftTimeLimitExceeded included) kill the group: TERM, a short grace, then KILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from mediajobs import sandbox
from mediajobs.confine import Confinement
from mediajobs.errors import JobCancelled, JobTimeout, ProcessFailed, ResourceLimit
from mediajobs.sandbox import Limits, Sandbox

_PR_SET_PDEATHSIG = 1
_prctl: Any
try:
    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except OSError:  # not Linux/glibc: no parent-death signal, the process group still gets killed
    _prctl = None


class CancelSignal(Protocol):
    def is_set(self) -> bool: ...


# The job runner sets this, so every subprocess a job starts is cancellable without passing it along.
current_cancel: ContextVar[CancelSignal | None] = ContextVar("current_cancel", default=None)
# Likewise the resource limits every subprocess of a job runs under (the memory cap from the settings).
current_limits: ContextVar[Limits | None] = ContextVar("current_limits", default=None)
# And where its jailed children may look (the job's temp dir, and what to hide besides the shared dirs).
current_sandbox: ContextVar[Sandbox | None] = ContextVar("current_sandbox", default=None)

LineCallback = Callable[[str], None]

# How ffmpeg, x264, the dynamic loader and Python say an allocation failed under RLIMIT_AS.
_OUT_OF_MEMORY = re.compile(
    r"cannot allocate memory|out of memory|memoryerror|malloc of size \d+ failed|failed to allocate"
    r"|failed to map segment|bad_alloc|\benomem\b",
    re.IGNORECASE,
)


@dataclass
class Completed:
    """What a finished subprocess left behind."""

    args: list[str]
    returncode: int
    stdout: str
    stderr_tail: str


def _child_setup(limits: Limits | None, confinement: Confinement) -> Callable[[], None]:
    def setup() -> None:
        confinement.enter()  # before the parent-death signal: a change of uid clears it
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if limits is not None:
            limits.apply()

    return setup


def kill_group(proc: subprocess.Popen[bytes], *, grace_s: float = 0.5) -> None:
    """TERM the child's process group, then KILL whatever is left after `grace_s`."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _stop_if_cancelled(
    proc: subprocess.Popen[bytes], cancel: CancelSignal | None, program: str, grace_s: float
) -> None:
    if cancel is not None and cancel.is_set():
        kill_group(proc, grace_s=grace_s)
        raise JobCancelled(f"{os.path.basename(program)} stopped: the job was cancelled")


def _pump(stream: IO[bytes], name: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    try:
        for raw in iter(stream.readline, b""):
            lines.put((name, raw.decode("utf-8", "replace").rstrip("\r\n")))
    except (OSError, ValueError):  # the stream was closed under us after a kill
        pass
    finally:
        lines.put((name, None))


def run(
    args: Sequence[str],
    *,
    on_stdout: LineCallback | None = None,
    on_stderr: LineCallback | None = None,
    capture_stdout: bool = False,
    timeout_s: float | None = None,
    cancel: CancelSignal | None = None,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    stderr_tail_lines: int = 40,
    grace_s: float = 0.5,
    limits: Limits | None = None,
    network: bool | int = True,
    untrusted: bool | None = None,
) -> Completed:
    """Run `args` (a list, never a shell string) to completion, killable at any moment.

    `limits` (merged with the job's `current_limits`) bound the child's memory and CPU time, and a child
    stopped by one raises ResourceLimit whatever `check` says. `network=False` runs it without any network
    where the machine allows it, an int enters that network namespace (the egress jail's); see `sandbox`.
    An `untrusted` child (by default: any child without the host's network) parses strangers' input: its
    environment is `sandbox.child_env` (of `env`, only proxy variables are kept) and, inside a job, it runs
    as the sandbox uid with a minimal filesystem view where the worker is root.
    """
    argv = [str(a) for a in args]
    program = argv[0]
    cancel = cancel if cancel is not None else current_cancel.get()
    outer = current_limits.get()
    effective = limits.merged(outer) if limits is not None else outer
    if untrusted is None:
        untrusted = network is not True
    env_path = (env or os.environ).get("PATH") or sandbox.DEFAULT_PATH
    jail = current_sandbox.get()
    confinement, workdir = sandbox.confinement(
        network=network, untrusted=untrusted, sandbox=jail, program=program, env_path=env_path
    )
    if untrusted:
        env = sandbox.child_env(workdir or (Path(cwd) if cwd else None), env)
    confinement.cwd = str(cwd) if cwd else None
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_child_setup(effective, confinement.prepare()),
        )
    except subprocess.SubprocessError as exc:  # raised in the child before exec: the confinement failed
        raise ProcessFailed(f"{os.path.basename(program)} could not be confined: {exc}") from exc
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, "stdout", lines), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "stderr", lines), daemon=True),
    ]
    for t in pumps:
        t.start()
    stdout: list[str] = []
    tail: deque[str] = deque(maxlen=stderr_tail_lines)
    deadline = time.monotonic() + timeout_s if timeout_s else None
    open_streams = 2
    cpu_used_s: float | None = None
    try:
        while open_streams:
            _stop_if_cancelled(proc, cancel, program, grace_s)
            if deadline is not None and time.monotonic() > deadline:
                kill_group(proc, grace_s=grace_s)
                raise JobTimeout(f"{os.path.basename(program)} ran longer than {timeout_s:g} s")
            try:
                name, line = lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
            elif name == "stdout":
                if capture_stdout:
                    stdout.append(line)
                if on_stdout is not None:
                    on_stdout(line)
            else:
                tail.append(line)
                if on_stderr is not None:
                    on_stderr(line)
        cpu_used_s = _reap(proc, cancel, program, grace_s)
    finally:
        if proc.poll() is None:
            kill_group(proc, grace_s=grace_s)
        else:
            # Helpers the child left in its group (yt-dlp's ffmpeg, for one) go with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for t in pumps:
            t.join(timeout=1.0)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
    result = Completed(argv, proc.returncode, "\n".join(stdout), "\n".join(tail))
    hit = _limit_hit(effective, proc.returncode, cpu_used_s, result.stderr_tail)
    if hit is not None:
        raise ResourceLimit(f"{os.path.basename(program)} was stopped: {hit}")
    if check and proc.returncode != 0:
        raise ProcessFailed(
            f"{os.path.basename(program)} exited with {proc.returncode}: {last_words(result.stderr_tail)}"
        )
    return result


def _reap(
    proc: subprocess.Popen[bytes], cancel: CancelSignal | None, program: str, grace_s: float
) -> float | None:
    """Wait for the child to exit and reap it with wait4, for the CPU seconds it used (None if unknown)."""
    while proc.returncode is None:
        _stop_if_cancelled(proc, cancel, program, grace_s)
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: Popen knows the status
            proc.poll()
            return None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_utime + usage.ru_stime)
        time.sleep(0.02)
    return None


def _limit_hit(limits: Limits | None, returncode: int, cpu_used_s: float | None, stderr: str) -> str | None:
    """Which resource limit stopped a child that failed, in words, or None when no limit did."""
    if limits is None or returncode == 0:
        return None
    if limits.cpu_s:
        soft = max(1, int(limits.cpu_s))
        # Most programs die of SIGXCPU (or of SIGKILL at the hard limit); ffmpeg catches SIGXCPU, closes its
        # outputs and exits with 255, so the CPU time it used is the reliable sign.
        used_all = cpu_used_s is not None and cpu_used_s >= soft - 0.05
        if returncode == -signal.SIGXCPU or used_all:
            return f"it used its whole CPU-time allowance of {soft} s"
    if limits.memory_bytes and _OUT_OF_MEMORY.search(stderr):
        mib = limits.memory_bytes // 2**20
        return f"it ran out of memory under its limit of {mib} MiB (MEDIAJOBS_CHILD_MEMORY_BYTES)"
    return None


def last_words(stderr_tail: str, limit: int = 400) -> str:
    """The most telling part of a tool's stderr for an error message."""
    text = stderr_tail.strip().splitlines()
    meaningful = [line for line in text if line.strip()]
    joined = " | ".join(meaningful[-3:])
    return joined[-limit:] if joined else "(no output)"


@contextlib.contextmanager
def cancellable(
    cancel: CancelSignal | None, limits: Limits | None = None, jail: Sandbox | None = None
) -> Iterator[None]:
    """Make `cancel` the signal, `limits` the resource limits and `jail` the sandbox every `run` inside the
    block obeys."""
    token = current_cancel.set(cancel)
    limits_token = current_limits.set(limits)
    sandbox_token = current_sandbox.set(jail)
    try:
        yield
    finally:
        current_sandbox.reset(sandbox_token)
        current_limits.reset(limits_token)
        current_cancel.reset(token)
