"""A worker stopped with SIGTERM finishes what fits in its grace and hands the rest back, no attempt used."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediajobs.testing.servers import wait_for
from tests.conftest import MakeStack, submit, wait_state
from tests.pids import alive, read_pid

GRACE_S = 3.0


def at(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def restarted_after(api: httpx.Client, job_id: str, moment: float) -> dict[str, Any]:
    """The job once it runs again, started after `moment`."""

    def check() -> dict[str, Any] | None:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        started = job["started_at"]
        return job if job["state"] == "running" and started and at(started) > moment else None

    return wait_for(check, timeout_s=15, message=f"job {job_id} to run again")  # type: ignore[return-value]


# `mediajobs up` and systemd signal the whole process group (pool children too); docker only the worker.
@pytest.mark.parametrize("target", ["group", "worker"])
def test_sigterm_hands_long_jobs_back_without_using_an_attempt_and_lets_short_ones_finish(
    make_stack: MakeStack, tmp_path: Path, target: str
) -> None:
    # A heartbeat timeout far above the grace: a job that waited for the reaper would show it.
    stack = make_stack(workers=0, shutdown_grace_s=str(GRACE_S), heartbeat_timeout_s="60")
    stopping = stack.start_worker("default,cpu", 4)
    runs = tmp_path / "runs.txt"
    with stack.client() as api:
        # Reports progress, so its ETA says at once that it cannot finish within the grace.
        eta_job = submit(api, "test.sleep", {"seconds": 120})
        # Says nothing about its ETA: it gets the whole grace, then goes back.
        quiet_job = submit(api, "tests.count", {"path": str(runs), "seconds": 120})
        # A child process and a temp dir; on the cpu queue, which only the stopping worker reads.
        long_pidfile = tmp_path / "long.pid"
        child_job = submit(api, "tests.subprocess", {"seconds": 300, "pidfile": str(long_pidfile)})
        for job in (eta_job, quiet_job, child_job):
            wait_state(api, job["id"], "running")
        long_pid = read_pid(long_pidfile)
        stack.start_worker("default", 2)  # takes what comes back on the default queue
        short_pidfile = tmp_path / "short.pid"
        short_job = submit(api, "tests.subprocess", {"seconds": 1.5, "pidfile": str(short_pidfile)})
        wait_state(api, short_job["id"], "running")
        read_pid(short_pidfile)

        stopped_at = time.time()
        if target == "group":
            os.killpg(stopping.pid, signal.SIGTERM)
        else:
            os.kill(stopping.pid, signal.SIGTERM)

        again = restarted_after(api, eta_job["id"], stopped_at)
        assert at(again["started_at"]) - stopped_at < 1.5
        # A new attempt (progress starts over), and the allowance grew with it: none was used up.
        assert (again["attempt"], again["max_attempts"]) == (2, eta_job["max_attempts"] + 1)

        again = restarted_after(api, quiet_job["id"], stopped_at)
        assert GRACE_S - 0.5 < at(again["started_at"]) - stopped_at < GRACE_S + 2.0
        assert (again["attempt"], again["max_attempts"]) == (2, quiet_job["max_attempts"] + 1)
        # Counted by the handler itself: it ran twice, as attempts 1 and 2.
        wait_for(lambda: len(runs.read_text().splitlines()) == 2, message="the second run to start")
        assert [line.split()[1] for line in runs.read_text().splitlines()] == ["1", "2"]

        done = wait_state(api, short_job["id"], "succeeded", "failed", timeout_s=10)
        assert done["state"] == "succeeded" and done["attempt"] == 1
        assert at(done["finished_at"]) > stopped_at

        # Nobody else reads cpu: handed back and waiting, its process killed and its temp dir removed.
        wait_for(lambda: not alive(long_pid), timeout_s=GRACE_S + 2, message="the child process to die")
        waiting = wait_state(api, child_job["id"], "queued", timeout_s=5)
        assert waiting["attempt"] == 2 and waiting["error"] is None
        assert waiting["max_attempts"] == child_job["max_attempts"] + 1
        temp_root = Path(stack.env["MEDIAJOBS_TEMP_DIR"])
        assert not list(temp_root.glob(f"job-{child_job['id'][:8]}-*"))

        stopping.wait(timeout=GRACE_S + 5)
        for job in (eta_job, quiet_job, child_job):
            api.delete(f"/api/v1/jobs/{job['id']}")
