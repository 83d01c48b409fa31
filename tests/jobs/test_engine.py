from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from mediajobs import bootstrap
from mediajobs.broker import Message
from mediajobs.config import Settings
from mediajobs.testing.servers import RedisServer, wait_for
from tests.conftest import BACKENDS, MakeStack, submit, wait_state
from tests.pids import alive, read_pid


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancel_kills_the_subprocess_within_two_seconds(
    make_stack: MakeStack, tmp_path: Path, backend: str
) -> None:
    stack = make_stack(backend)
    with stack.client() as api:
        pidfile = tmp_path / "child.pid"
        job = submit(api, "tests.subprocess", {"seconds": 300, "pidfile": str(pidfile)})
        pid = read_pid(pidfile)
        assert alive(pid)
        asked = time.monotonic()
        assert api.delete(f"/api/v1/jobs/{job['id']}").status_code == 202
        wait_for(lambda: not alive(pid), timeout_s=2.0, message="the child process to be gone")
        assert time.monotonic() - asked <= 2.0
        done = wait_state(api, job["id"], "cancelled", timeout_s=5)
        assert done["error"]["code"] == "cancelled"
    # The job made a temp directory while running (tests.subprocess writes one); cancel removed it.
    temp_root = Path(stack.env["MEDIAJOBS_TEMP_DIR"])
    assert temp_root.is_dir()
    assert list(temp_root.iterdir()) == []


def test_queued_job_is_cancelled_at_once_and_never_starts(make_stack: MakeStack, tmp_path: Path) -> None:
    stack = make_stack(workers=0)  # nothing consumes: the job stays queued
    with stack.client() as api:
        marker = tmp_path / "ran.txt"
        job = submit(api, "tests.count", {"path": str(marker)})
        response = api.delete(f"/api/v1/jobs/{job['id']}")
        assert response.status_code == 202
        assert response.json()["state"] == "cancelled"
        stack.start_worker()
        follow = submit(api, "test.add", {"x": 1, "y": 1})
        wait_state(api, follow["id"], "succeeded")
        assert api.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "cancelled"
        assert not marker.exists()


def test_soft_time_limit_fails_with_timeout_and_leaves_no_process(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    stack = make_stack()
    with stack.client() as api:
        pidfile = tmp_path / "child.pid"
        job = submit(api, "tests.slow_subprocess", {"seconds": 120, "pidfile": str(pidfile)})
        pid = read_pid(pidfile)
        done = wait_state(api, job["id"], "failed", "succeeded", timeout_s=15)
        assert done["error"]["code"] == "timeout"
        assert "1.5 s" in done["error"]["message"]
        assert not alive(pid)


def test_duplicate_delivery_runs_the_job_once(make_stack: MakeStack, tmp_path: Path) -> None:
    stack = make_stack()
    runs = tmp_path / "runs.txt"
    with stack.client() as api:
        job = submit(api, "tests.count", {"path": str(runs), "seconds": 0.5})
        broker = bootstrap.broker(Settings(broker_url=stack.env["MEDIAJOBS_BROKER_URL"]))
        for _ in range(3):
            broker.publish(Message(job["id"], 1, "default", 5, None, None))
        wait_state(api, job["id"], "succeeded")
        time.sleep(1.0)  # give the duplicates time to arrive and be dropped
    assert len(runs.read_text().splitlines()) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_jobs_accepted_while_the_broker_is_down_run_when_it_returns(
    make_stack: MakeStack, tmp_path: Path, backend: str
) -> None:
    broker = RedisServer(tmp_path / "broker").start()
    try:
        stack = make_stack(backend, broker_url=broker.url)
        with stack.client() as api:
            broker.stop()
            started = time.monotonic()
            job = submit(api, "test.add", {"x": 20, "y": 22})
            assert time.monotonic() - started < 1.0
            time.sleep(1.5)
            assert api.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "queued"
            ready = api.get("/readyz")
            assert ready.status_code == 503 and "broker" in ready.json()["failing"]
            broker.start()
            done = wait_state(api, job["id"], "succeeded", timeout_s=60)
            assert done["result"] == 42
            # The worker consumes again after the outage: a new job runs too.
            assert (
                wait_state(api, submit(api, "test.add", {"x": 1, "y": 2})["id"], "succeeded")["result"] == 3
            )
    finally:
        broker.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_job_of_a_killed_worker_is_requeued_and_finished_by_another(
    make_stack: MakeStack, tmp_path: Path, backend: str
) -> None:
    stack = make_stack(backend)
    runs = tmp_path / "runs.txt"
    with stack.client() as api:
        job = submit(api, "tests.count", {"path": str(runs), "seconds": 4})
        wait_state(api, job["id"], "running")
        # Killed once its handler has started (after the job is marked running, under load a moment later).
        wait_for(lambda: runs.exists() and runs.read_text().strip(), message="attempt 1 to start")
        stack.kill_worker(stack.workers[0])
        stack.start_worker()
        done = wait_state(api, job["id"], "succeeded", "failed", timeout_s=60)
        assert done["state"] == "succeeded"
        assert done["attempt"] == 2
    assert [line.split()[1] for line in runs.read_text().splitlines()] == ["1", "2"]


def test_killed_worker_on_the_last_attempt_fails_with_worker_lost(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    stack = make_stack()
    with stack.client() as api:
        job = submit(api, "tests.count", {"path": str(tmp_path / "runs"), "seconds": 30}, max_attempts=1)
        wait_state(api, job["id"], "running")
        stack.kill_worker(stack.workers[0])
        done = wait_state(api, job["id"], "failed", timeout_s=60)
        assert done["error"]["code"] == "worker_lost"
        assert "last attempt" in done["error"]["message"]


def test_api_keys_require_a_valid_bearer_token(make_stack: MakeStack) -> None:
    key = uuid.uuid4().hex
    stack = make_stack(workers=0, api_keys=f"other-key,{key}")
    with stack.client() as api:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {key}"}):
            response = api.get("/api/v1/jobs", headers=headers)
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert (
            api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 1}}).status_code == 401
        )
        ok = api.get("/api/v1/jobs", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        assert api.get("/healthz").status_code == 200


def test_readyz_is_ok_when_every_part_is_reachable(make_stack: MakeStack) -> None:
    stack = make_stack(workers=0)
    response = httpx.get(f"{stack.api_url}/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}
