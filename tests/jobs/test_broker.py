"""Broker restarts and lost messages: queued jobs are sent again at once, once, and none runs twice."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from mediajobs.testing.servers import RedisServer, wait_for
from mediajobs.testing.up import Up
from tests.conftest import BACKENDS, MakeStack
from tests.stacks import KINDS
from tests.test_up import states_of, submit_counted


def queued_messages(url: str) -> int:
    client = redis.Redis.from_url(url)
    return sum(int(client.llen(key)) for key in client.scan_iter("default*"))


def runs_of(path: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in path.read_text().splitlines()) if path.exists() else Counter()


@pytest.mark.parametrize("backend", BACKENDS)
def test_jobs_whose_messages_a_broker_restart_lost_run_at_once(
    make_stack: MakeStack, tmp_path: Path, backend: str
) -> None:
    broker = RedisServer(tmp_path / "broker").start()
    try:
        stack = make_stack(backend, workers=0, broker_url=broker.url)
        runs = tmp_path / "runs"
        ids = submit_counted(stack.api_url, runs, 30)
        # Exactly 30: the API looked at the new broker before it served a request, so none went out twice.
        wait_for(lambda: queued_messages(broker.url) == 30, message="the 30 messages to be in Redis")
        # Redis comes back on the same port without its data: every message is gone, the jobs are queued.
        broker.stop()
        shutil.rmtree(broker.directory)
        broker.start()
        started = time.monotonic()
        stack.start_worker()
        wait_for(
            lambda: set(states_of(stack.api_url, ids).values()) == {"succeeded"},
            timeout_s=30,
            message="every job to succeed (republish_after_s is 600 s)",
        )
        assert time.monotonic() - started < 30
        assert runs_of(runs) == dict.fromkeys(ids, 1)
        # Sent again once, by one process, not once per process.
        logs = stack.log("api") + stack.log("worker-0")
        assert logs.count("republished 30 queued job(s) at once") == 1, logs
    finally:
        broker.stop()


def test_jobs_are_sent_again_once_when_the_broker_answers_again_after_an_outage(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    broker = RedisServer(tmp_path / "broker").start()
    try:
        stack = make_stack(workers=0, broker_url=broker.url)
        runs = tmp_path / "runs"
        ids = submit_counted(stack.api_url, runs, 10)
        wait_for(lambda: queued_messages(broker.url) == 10, message="the 10 messages to be in Redis")
        # The messages end up somewhere no consumer reads (as a worker's prefetched messages do when its
        # connection drops: kombu parks them until the visibility timeout), and Redis stops answering for a
        # while without restarting.
        client = redis.Redis.from_url(broker.url)
        client.delete(*client.scan_iter("default*"))
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)
        time.sleep(4)  # the API's broker check times out after 2 s; it runs every second
        os.kill(broker.proc.pid, signal.SIGCONT)
        stack.start_worker()
        wait_for(
            lambda: set(states_of(stack.api_url, ids).values()) == {"succeeded"},
            timeout_s=30,
            message="every job to succeed (republish_after_s is 600 s)",
        )
        assert runs_of(runs) == dict.fromkeys(ids, 1)
        assert stack.log("api").count("republished 10 queued job(s) at once") == 1
    finally:
        if broker.proc is not None:
            os.kill(broker.proc.pid, signal.SIGCONT)
        broker.stop()


def post_burst(api: str, path: Path, n: int, threads: int, on_count: Callable[[int], None]) -> list[int]:
    """POST `n` tests.count jobs from `threads` clients; the status of every answer."""
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=api, timeout=30) as http:
            while True:
                with lock:
                    if len(statuses) >= n:
                        return
                    statuses.append(0)
                    mine = len(statuses) - 1
                answer = http.post(
                    "/api/v1/jobs", json={"kind": "tests.count", "params": {"path": str(path)}}
                )
                with lock:
                    statuses[mine] = answer.status_code
                on_count(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses


def test_a_burst_through_a_sigkill_of_the_managed_redis_loses_no_job_and_runs_none_twice(
    tmp_path: Path,
) -> None:
    up = Up(tmp_path / "stack", MEDIAJOBS_IO_CONCURRENCY="4", MEDIAJOBS_KIND_MODULES=KINDS).start()
    try:
        burst_through_a_redis_kill(up, tmp_path / "runs")
    finally:
        assert up.stop() == 0


def burst_through_a_redis_kill(up: Up, runs: Path) -> None:
    total, kill_at = 300, 100
    killed = threading.Event()

    def kill_redis_once(count: int) -> None:
        if count >= kill_at and not killed.is_set():
            killed.set()
            os.kill(up.pid_of(b"redis-server"), signal.SIGKILL)

    started = time.monotonic()
    statuses = post_burst(up.api_url, runs, total, 8, kill_redis_once)
    assert statuses == [202] * total
    assert killed.is_set()
    with httpx.Client(base_url=up.api_url, timeout=10) as http:
        ids = [job["id"] for job in http.get("/api/v1/jobs", params={"limit": 500}).json()["items"]]
    assert len(ids) == total

    wait_for(
        lambda: set(states_of(up.api_url, ids).values()) == {"succeeded"},
        timeout_s=60,
        interval_s=0.5,
        message="all 300 jobs to succeed (republish_after_s is 600 s)",
    )
    elapsed = time.monotonic() - started
    assert "redis exited with code -9; restarting" in up.log()
    assert runs_of(runs) == dict.fromkeys(ids, 1)  # every job ran, and ran once
    print(f"300 jobs through a Redis SIGKILL: all succeeded {elapsed:.1f} s after the burst began")
