"""Flower from PyPI, unmodified, against `mediajobs up`, configured by nothing but the stack's variables."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediajobs.testing.servers import free_port, wait_for
from mediajobs.testing.up import Up
from tests.conftest import submit, wait_state
from tests.stacks import KINDS


@contextlib.contextmanager
def flower(env: dict[str, str], cwd: Path) -> Iterator[httpx.Client]:
    """`celery -A mediajobs.worker flower` on a free loopback port; a client for its HTTP API."""
    port = free_port()
    with open(cwd / "flower.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mediajobs.worker",
                "flower",
                f"--port={port}",
                "--address=127.0.0.1",
            ],
            # Flower 2 answers its HTTP API only with authentication configured, or with this set.
            env={**env, "FLOWER_UNAUTHENTICATED_API": "true"},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_for(lambda: client.get("/healthcheck").status_code == 200, timeout_s=30, message="Flower")
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def worker_names(up: Up) -> dict[str, str]:
    """Each of `up`'s Celery workers by the queues it consumes: `cpu` -> `cpu.<pid>@<host>`."""
    assert up.proc is not None
    names = {}
    for pid in up.pids():
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        status = Path(f"/proc/{pid}/status").read_text()
        parent = int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])
        if "worker" in argv and "--queues" in argv and parent == up.proc.pid:  # not a pool child
            queues = argv[argv.index("--queues") + 1]
            names[queues] = f"{queues.replace(',', '+')}.{pid}@{socket.gethostname()}"
    return names


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    """`mediajobs up` with its managed Redis: a socket (or port) and a password in its data dir."""
    stack = Up(tmp_path / "up", MEDIAJOBS_KIND_MODULES=KINDS)
    try:
        yield stack.start()
    finally:
        stack.stop()


def test_flower_lists_every_worker_and_every_task_jobs_ran(up: Up, tmp_path: Path) -> None:
    workers = worker_names(up)
    assert set(workers) == {"cpu", "io,default"}, workers
    with flower(up.env, up.directory) as fl:
        # Listed by `inspect` (asked again with refresh=1, as the UI's refresh button does) ...
        wait_for(
            lambda: set(fl.get("/api/workers", params={"refresh": 1}).json()) >= set(workers.values()),
            timeout_s=20,
            message="Flower to list both workers",
        )
        listed = fl.get("/api/workers").json()
        for queues, name in workers.items():
            assert {q["name"] for q in listed[name]["active_queues"]} == set(queues.split(","))
            assert "mediajobs.run" in listed[name]["registered"]
        # ... and online, from their heartbeat events.
        online = dict.fromkeys(workers.values(), True)
        wait_for(
            lambda: fl.get("/api/workers", params={"status": 1}).json() == online,
            timeout_s=10,
            message="Flower to see both workers online",
        )
        # Task events start off (each costs CPU); Flower turns them on in every worker within seconds. `up`'s
        # workers log warnings only, so that is seen as Flower sees it: a probe job on each queue is a task.
        with httpx.Client(base_url=up.api_url, timeout=10) as api:

            def events_on() -> bool:
                probes = [submit(api, "test.add", {"x": 0, "y": 0})]
                probes.append(
                    submit(api, "tests.subprocess", {"seconds": 0.0, "pidfile": str(tmp_path / "p")})
                )
                for probe in probes:
                    wait_state(api, probe["id"], "succeeded")
                time.sleep(1.0)  # events travel by the broker
                tasks = fl.get("/api/tasks").json().values()
                return all(any(p["id"] in (t["args"] or "") for t in tasks) for p in probes)

            wait_for(
                events_on, timeout_s=30, interval_s=1.0, message="Flower to turn on the workers' task events"
            )

        with httpx.Client(base_url=up.api_url, timeout=10) as api:
            jobs = {
                "io,default": submit(api, "test.add", {"x": 2, "y": 3}),
                "cpu": submit(api, "tests.subprocess", {"seconds": 0.1, "pidfile": str(tmp_path / "pid")}),
            }
            for job in jobs.values():
                wait_state(api, job["id"], "succeeded")

        def tasks_of_jobs() -> dict[str, dict[str, Any]] | None:
            tasks = fl.get("/api/tasks").json().values()
            found = {
                job["id"]: task
                for job in jobs.values()
                for task in tasks
                if job["id"] in (task["args"] or "")
            }
            done = len(found) == len(jobs) and all(t["state"] == "SUCCESS" for t in found.values())
            return found if done else None

        found = wait_for(tasks_of_jobs, timeout_s=10, message="Flower to show both jobs' tasks succeeded")
        assert isinstance(found, dict)
        for queues, job in jobs.items():
            task = found[job["id"]]
            # Named by the job's kind, on the worker that ran it, from received to succeeded.
            assert (task["name"], task["worker"]) == (job["kind"], workers[queues])
            assert task["received"] and task["started"] and task["succeeded"]
