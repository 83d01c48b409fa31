"""Shared set-up for the media benchmarks: a source clip, bare ffmpeg runs, CPU accounting, the media API."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

from mediajobs import process
from mediajobs.config import Settings
from mediajobs.testing.servers import RedisServer, wait_for
from mediajobs.testing.stacks import Stack, stack_env

SOURCE_S = 20
SOURCE_WIDTH, SOURCE_HEIGHT = 1920, 1080
SOURCE_FPS = 30
CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL_S = 0.05
TERMINAL_JOB_STATES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Run:
    """What one measured piece of work cost: elapsed time and CPU time (user + system), in seconds."""

    wall_s: float
    cpu_s: float


def best(runs: Sequence[Run]) -> Run:
    """The least disturbed figures of repeated runs: on a shared machine noise only ever adds time."""
    return Run(min(r.wall_s for r in runs), min(r.cpu_s for r in runs))


def run_line(label: str, runs: Sequence[Run]) -> str:
    b, walls = best(runs), ", ".join(f"{r.wall_s:.1f}" for r in runs)
    return f"  {label:<58} wall {b.wall_s:6.2f} s   CPU {b.cpu_s:6.2f} s   (walls {walls})"


@dataclass(frozen=True)
class Command:
    """One subprocess exactly as mediajobs would start it."""

    argv: list[str]
    cwd: Path | None = None


def cache_dir() -> Path:
    """Where benchmarks keep the sources they generate ($XDG_CACHE_HOME/mediajobs-bench): minutes to make."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mediajobs-bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def make_source(directory: Path) -> Path:
    """A 20 s 1080p30 H.264/AAC clip from lavfi (testsrc2 picture, 440 Hz tone), like the tests' fixtures."""
    out = directory / "source.mp4"
    duration = str(SOURCE_S)
    size = f"{SOURCE_WIDTH}x{SOURCE_HEIGHT}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={SOURCE_FPS}:duration={duration}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
         "-movflags", "+faststart", "-t", duration, str(out)],
        check=True,
    )  # fmt: skip
    return out


def job_threads() -> int:
    """The ffmpeg thread count a worker uses with default settings, which is what the bench stack runs."""
    # model_construct: the defaults alone, not this shell's MEDIAJOBS_* variables (base_env drops those too).
    return Settings.model_construct().effective_ffmpeg_threads


class _Captured(Exception):
    """Stops a media function at its first subprocess, once the argv is recorded."""


def capture(call: Callable[[], object]) -> Command:
    """The first subprocess `call` starts, without starting it: the very argv and cwd the worker runs."""
    seen: list[Command] = []

    def record(args: Sequence[str], **kwargs: Any) -> process.Completed:
        cwd = kwargs.get("cwd")
        seen.append(Command([str(a) for a in args], Path(cwd) if cwd else None))
        raise _Captured

    with mock.patch.object(process, "run", record), contextlib.suppress(_Captured):
        call()
    if not seen:
        raise RuntimeError("the media function started no subprocess")
    return seen[0]


def option(argv: Sequence[str], name: str) -> str:
    """The value following `name` in an argv, so baselines reuse the encoder settings mediajobs chose."""
    return argv[list(argv).index(name) + 1]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_commands(commands: Sequence[Command]) -> Run:
    """Run `commands` side by side; wall time until the last one ends, CPU time of all of them.

    RUSAGE_CHILDREN counts children once they are waited for. The bench's stack processes are children of
    this process too, but they are only reaped when the stack stops, so they never leak into the delta.
    """
    cpu_before, started = children_cpu_s(), time.perf_counter()
    with contextlib.ExitStack() as files:
        # Logs in files, not pipes: a pipe nobody reads while another process is waited for can fill up.
        logs = [files.enter_context(tempfile.TemporaryFile()) for _ in commands]
        procs = [
            subprocess.Popen(
                c.argv, cwd=c.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
            for c, log in zip(commands, logs, strict=True)
        ]
        failures = []
        for c, proc, log in zip(commands, procs, logs, strict=True):
            if proc.wait() != 0:
                log.seek(0)
                failures.append(f"{' '.join(c.argv)}: {log.read()[-2000:].decode(errors='replace')}")
    if failures:
        raise RuntimeError("a baseline command failed:\n" + "\n".join(failures))
    return Run(time.perf_counter() - started, children_cpu_s() - cpu_before)


def tree_cpu_s(roots: Sequence[int]) -> float:
    """CPU seconds of `roots` and all their descendants, living or already reaped.

    utime+stime is what a process used itself; cutime+cstime is what its waited-for children used. A Celery
    pool child waits for its ffmpeg, so ffmpeg's CPU lands in the pool child's cutime once it ends, and a
    live descendant is counted through its own utime+stime: no process is counted twice or missed.
    """
    parents: dict[int, list[int]] = defaultdict(list)
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # it ended between the listing and the read
        # The command name may hold spaces and parentheses; the fields after the last ")" do not.
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[int(fields[1])].append(pid)
        ticks[pid] = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    total, todo = 0, list(roots)
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(parents.get(pid, []))
    return total / CLK_TCK


def stack_pids(s: Stack) -> list[int]:
    return [p.pid for p in [s.api, *s.workers] if p is not None]


def redis_pids(redis: RedisServer) -> list[int]:
    return [redis.proc.pid] if redis.proc is not None else []


class StackMeter:
    """Wall time, and CPU time of the whole stack (API, worker, pool children, their ffmpeg), over a span."""

    def __init__(self, s: Stack) -> None:
        self.pids = stack_pids(s)
        self.started = time.perf_counter()
        self.cpu_before = tree_cpu_s(self.pids)

    def stop(self) -> Run:
        return Run(time.perf_counter() - self.started, tree_cpu_s(self.pids) - self.cpu_before)


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine since boot, from the first line of /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


class Noise:
    """How many cores the rest of the machine took over a span: the contention behind a run's figures.

    Other processes = the machine's busy time minus ours (this process, its reaped children, and the
    process trees of `pids`, which are not reaped until the end); steal = time the hypervisor gave away.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = pids
        self.started = time.perf_counter()
        self.busy, self.steal = _machine_cpu_s()
        self.ours = self._ours()

    def _ours(self) -> float:
        return self_cpu_s() + children_cpu_s() + tree_cpu_s(self.pids)

    def line(self) -> str:
        wall = time.perf_counter() - self.started
        busy, steal = _machine_cpu_s()
        # Clock-tick rounding can take a few hundredths below zero on an idle machine.
        others = max(0.0, (busy - self.busy) - (self._ours() - self.ours))
        return (
            f"  machine noise while measuring: other processes kept {others / wall:.2f} of "
            f"{os.cpu_count()} cores busy, the hypervisor stole {(steal - self.steal) / wall:.2f}"
        )


def upload_file(client: httpx.Client, path: Path, *, pipeline: str | None = None) -> dict[str, Any]:
    """POST the file as a raw body (`pipeline`: `?pipeline=`, e.g. "hls,thumbnail"; default the server's); the
    answer is {"media": ..., "job": ...}."""
    params = {"filename": path.name, **({"pipeline": pipeline} if pipeline else {})}
    with path.open("rb") as body:
        r = client.post(
            "/api/v1/media/uploads",
            params=params,
            content=body,
            headers={"Content-Type": "video/mp4", "Content-Length": str(path.stat().st_size)},
            timeout=300,
        )
    if r.status_code != 202:
        raise RuntimeError(f"upload answered {r.status_code}: {r.text}")
    return dict(r.json())


def wait_media(client: httpx.Client, media_id: str, *, timeout_s: float = 900) -> dict[str, Any]:
    """Poll the asset until it is ready; a failed asset stops the benchmark with its error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        media = client.get(f"/api/v1/media/{media_id}").json()
        if media["state"] == "ready":
            return dict(media)
        if media["state"] == "failed":
            raise RuntimeError(f"media {media_id} failed: {media.get('error')}")
        time.sleep(POLL_S)
    raise RuntimeError(f"media {media_id} not ready after {timeout_s:g} s")


def wait_job(client: httpx.Client, job_id: str, *, timeout_s: float = 900) -> dict[str, Any]:
    """Poll the job until it succeeds; any other end stops the benchmark with its error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] == "succeeded":
            return dict(job)
        if job["state"] in TERMINAL_JOB_STATES:
            raise RuntimeError(f"job {job_id} ({job['kind']}) ended {job['state']}: {job.get('error')}")
        time.sleep(POLL_S)
    raise RuntimeError(f"job {job_id} not done after {timeout_s:g} s")


def run_time_s(job: dict[str, Any]) -> float:
    """How long the job ran in the worker, from its own started_at/finished_at."""
    started, finished = job["started_at"], job["finished_at"]
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()


def jobs_of(client: httpx.Client, media: dict[str, Any]) -> list[dict[str, Any]]:
    return [client.get(f"/api/v1/jobs/{job_id}").json() for job_id in media.get("jobs", [])]


def ratio_line(label: str, value: float, aim: str) -> str:
    return f"  {label:<58} {value:6.2f}   (aim {aim})"


@contextlib.contextmanager
def api_stack(redis: RedisServer, **env: str) -> Iterator[Stack]:
    """An API with no worker yet (add them with `pinned_worker`), default engine timings; `env` are further
    settings by their names."""
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"mj-bench-{os.getpid()}-{time.monotonic_ns()}"
    directory.mkdir(parents=True)
    s = Stack(directory, stack_env(directory, broker_url=redis.url, timings={}, **env)).start(workers=[])
    try:
        yield s
    finally:
        s.stop()
        subprocess.run(["rm", "-rf", str(directory)], check=False)


def pinned_worker(s: Stack, core: int | None, queues: str = "cpu", concurrency: int = 1) -> None:
    """A worker process, on one core when `core` is given (one ffmpeg thread, one job at a time)."""
    name = f"worker-{len(s.workers)}"
    env = dict(s.env)
    argv = [sys.executable, "-m", "mediajobs", "worker", "--queues", queues]
    argv += ["--concurrency", str(concurrency), "--no-migrate"]
    if core is not None:
        env["MEDIAJOBS_FFMPEG_THREADS"] = "1"
        argv = ["taskset", "-c", str(core), *argv]
    log = open(s.directory / f"{name}.log", "ab")  # noqa: SIM115 - the stack's stop() closes it
    s._logs.append(log)
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    s.workers.append(proc)
    wait_for(lambda: b"ready." in (s.directory / f"{name}.log").read_bytes(), timeout_s=60, message=name)


def up_workers(s: Stack) -> None:
    """The workers `mediajobs up` runs with default settings: a cpu worker (a slot per two cores) and an
    io/default worker (4 slots on this machine)."""
    defaults = Settings.model_construct()  # the defaults, not this shell's MEDIAJOBS_* variables
    pinned_worker(s, None, "cpu", defaults.effective_cpu_concurrency)
    pinned_worker(s, None, "io,default", defaults.effective_io_concurrency)
