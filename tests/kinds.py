"""Job kinds an application would register, used by the tests through MEDIAJOBS_KIND_MODULES."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mediajobs import process
from mediajobs.db.models import Job
from mediajobs.errors import TransientError, UnsupportedMedia
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import job_kind


class SubprocessParams(BaseModel):
    seconds: float = 300
    pidfile: str


def _record_pid(pidfile: str) -> process.LineCallback:
    def on_line(line: str) -> None:
        if line.strip().isdigit():
            Path(pidfile).write_text(line.strip())

    return on_line


@job_kind("tests.subprocess", params=SubprocessParams, queue="cpu", soft_time_limit_s=600)
def run_subprocess(ctx: JobContext, params: SubprocessParams) -> str:
    """Run a long child process (a stand-in for ffmpeg) in the job's temp dir, recording its pid."""
    ctx.progress(1, "Running a child process")
    (ctx.temp_dir / "partial-output").write_bytes(b"x" * 1024)
    process.run(
        ["sh", "-c", 'echo $$; exec sleep "$0"', str(params.seconds)], on_stdout=_record_pid(params.pidfile)
    )
    return "finished"


@job_kind(
    "tests.slow_subprocess", params=SubprocessParams, queue="cpu", soft_time_limit_s=1.5, time_limit_s=10
)
def slow_subprocess(ctx: JobContext, params: SubprocessParams) -> str:
    """Like tests.subprocess, with a soft time limit of 1.5 s."""
    process.run(
        ["sh", "-c", 'echo $$; exec sleep "$0"', str(params.seconds)], on_stdout=_record_pid(params.pidfile)
    )
    return "finished"


class FlakyParams(BaseModel):
    fail_times: int
    counter: str


@job_kind("tests.flaky", params=FlakyParams, max_attempts=3)
def flaky(ctx: JobContext, params: FlakyParams) -> int:
    """Fail with a transient error `fail_times` times, then succeed."""
    path = Path(params.counter)
    runs = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(runs))
    if runs <= params.fail_times:
        raise TransientError(f"simulated outage {runs}", code="source_unreachable")
    return runs


@job_kind("tests.permanent")
def permanent(ctx: JobContext, params: BaseModel) -> None:
    """Fail at once with a permanent error."""
    raise UnsupportedMedia("the file is a text file, not a video")


class CountParams(BaseModel):
    path: str
    seconds: float = 0.0


@job_kind("tests.count", params=CountParams)
def count(ctx: JobContext, params: CountParams) -> None:
    """Append a line to `path` each time it runs (to count executions)."""
    with open(params.path, "a") as f:
        f.write(f"{ctx.job_id} {ctx.attempt}\n")
    if params.seconds:
        ctx.sleep(params.seconds)


@job_kind("tests.crash")
def crash(ctx: JobContext, params: BaseModel) -> None:
    """An unexpected exception (a bug in the handler)."""
    raise ZeroDivisionError("division by zero in the handler")


class HookedParams(BaseModel):
    ends: str
    seconds: float = 0.0


def _record_end(job: Job) -> None:
    with open(job.params["ends"], "a") as f:
        f.write(f"{job.id} {job.state}\n")


@job_kind("tests.hooked", params=HookedParams, on_end=_record_end)
def hooked(ctx: JobContext, params: HookedParams) -> None:
    """A job whose end hook appends `id state` to `ends` (to count how often it runs)."""
    if params.seconds:
        ctx.sleep(params.seconds)


class SpawnParams(BaseModel):
    kind: str
    params: dict[str, Any]


@job_kind("tests.spawn", params=SpawnParams)
def spawn(ctx: JobContext, params: SpawnParams) -> str:
    """Start a follow-up job through `ctx.enqueue` and return its id."""
    return ctx.enqueue(params.kind, params.params)


class JailProbeParams(BaseModel):
    targets: dict[str, Any]
    through_egress_guard: bool = False


@job_kind("tests.jail_probe", params=JailProbeParams, queue="io")
def jail_probe(ctx: JobContext, params: JailProbeParams) -> Any:
    """Run tests.jail_probe's PROBE as the toolkit runs ffmpeg and ffprobe (no network), or as an import runs
    yt-dlp (through the egress guard); the job's result is what the probe saw."""
    from mediajobs.egress import egress_guard
    from tests.jail_probe import PROBE

    argv = [sys.executable, "-c", PROBE, json.dumps(params.targets)]
    if not params.through_egress_guard:
        done = process.run(argv, network=False, capture_stdout=True)
    else:
        with egress_guard(ctx.settings) as guard:
            argv, env = guard.wrap(argv)
            # The whole environment, as imports passed it before: the runner must keep only what is allowed.
            env = {**os.environ, **env}
            done = process.run(argv, env=env, network=guard.network, untrusted=True, capture_stdout=True)
    return json.loads(done.stdout)


class HogParams(BaseModel):
    mib: int


@job_kind("tests.hog", params=HogParams)
def hog(ctx: JobContext, params: HogParams) -> int:
    """Hold `mib` MiB in the worker process itself (what an unbounded read of a stranger's answer does).

    Zeroed pages straight from the kernel (calloc): the address space is taken, no time is spent touching it.
    """
    held = [bytes(1 << 20) for _ in range(params.mib)]
    return len(held)
