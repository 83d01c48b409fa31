"""Engine benchmark: a PostgreSQL outage, a 1,000-job burst through a Redis SIGKILL, fan-out overhead."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, redis_server, stack
from bench.jobs import submit_many
from mediajobs import bootstrap
from mediajobs.broker import TASK_NAME
from mediajobs.config import Settings
from mediajobs.testing.servers import PostgresServer
from mediajobs.testing.up import Up

BURST = 1000
KILL_AT = 500
BURST_CLIENTS = 8
FAN_CHILDREN = 100
FAN_ROUNDS = 5
OUTAGE_S = 5.0
KINDS = "bench.engine_kinds"


def at(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        time.sleep(interval_s)
    return False


# --- 1. PostgreSQL outage -------------------------------------------------------------------------------


class RetryingClient(threading.Thread):
    """A client that POSTs one job during the outage and tries again every 0.2 s while answered 503."""

    def __init__(self, api_url: str) -> None:
        super().__init__(daemon=True)
        self.api_url = api_url
        self.accepted_at = 0.0
        self.job_id = ""
        self.refused = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=10) as client:
            while True:
                answer = client.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 1}})
                if answer.status_code == 202:
                    self.accepted_at, self.job_id = time.time(), answer.json()["id"]
                    return
                assert answer.status_code == 503, answer.text
                self.refused += 1
                time.sleep(0.2)


def finished(client: httpx.Client, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    done: dict[str, Any] = {}

    def ended() -> bool:
        done.update(client.get(f"/api/v1/jobs/{job_id}").json())
        return done.get("state") in ("succeeded", "failed", "cancelled")

    if not wait_until(ended, timeout_s, 0.02):
        raise RuntimeError(f"job {job_id} did not end within {timeout_s:g} s: {done}")
    return done


def postgres_outage(broker_url: str) -> None:
    pg = PostgresServer()
    pg.start()
    try:
        url = pg.create_database("bench_outage")
        # The worker reads `default` only: the bench.noop job (queue io) stays queued until its message is
        # handed to the worker by hand while the database is down.
        with stack(broker_url, queues="default", concurrency=2, database_url=url, kind_modules=KINDS) as s:
            with s.client() as api:
                warm = api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 1}})
                finished(api, warm.json()["id"])
                parked = api.post("/api/v1/jobs", json={"kind": "bench.noop", "params": {}}).json()
                pg.halt()
                down_at = time.monotonic()
                client = RetryingClient(s.api_url)
                client.start()
                celery = bootstrap.broker(Settings(broker_url=broker_url, kind_modules=KINDS)).celery
                celery.send_task(TASK_NAME, args=[parked["id"], 1], queue="default", retry=False)
                celery.close()
                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
                pg.resume()
                back = time.time()
                client.join(timeout=60)
                delivered = finished(api, parked["id"])
                retried = finished(api, client.job_id)
            for name, job in (("delivered", delivered), ("retried", retried)):
                if job["state"] != "succeeded" or job["attempt"] != 1:
                    raise RuntimeError(f"{name} job ended {job['state']} on attempt {job['attempt']}: {job}")
            first = min(at(delivered["finished_at"]), at(retried["finished_at"])) - back
            print(f"PostgreSQL stopped {OUTAGE_S:g} s under a running stack (pg_ctl start returned = t0)")
            delivered_s = at(delivered["finished_at"]) - back
            print(f"  first job succeeded                    {first:6.2f} s after t0")
            print(f"  job whose message came during the outage: succeeded {delivered_s:.2f} s after t0")
            print(
                f"  POST retried every 0.2 s ({client.refused} answers 503): 202 at "
                f"{client.accepted_at - back:.2f} s, succeeded {at(retried['finished_at']) - back:.2f} s "
                "after t0, attempt 1"
            )
    finally:
        pg.stop()


# --- 2. A burst through a SIGKILL of the managed redis-server ----------------------------------------------


def burst(up: Up, runs: Path) -> tuple[list[int], bool]:
    """POST BURST bench.count jobs from BURST_CLIENTS clients, SIGKILLing redis-server at the KILL_AT-th."""
    statuses: list[int] = []
    lock = threading.Lock()
    killed = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=up.api_url, timeout=30) as http:
            while True:
                with lock:
                    if len(statuses) >= BURST:
                        return
                    statuses.append(0)
                    mine = len(statuses) - 1
                if mine == KILL_AT:
                    os.kill(up.pid_of(b"redis-server"), signal.SIGKILL)
                    killed.set()
                answer = http.post(
                    "/api/v1/jobs", json={"kind": "bench.count", "params": {"path": str(runs)}}
                )
                statuses[mine] = answer.status_code

    threads = [threading.Thread(target=client) for _ in range(BURST_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, killed.is_set()


def succeeded_in(db_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as db:
        row = db.execute("SELECT count(*) FROM jobs WHERE kind = 'bench.count' AND state = 'succeeded'")
        return int(row.fetchone()[0])


def redis_kill_burst() -> None:
    with tempfile.TemporaryDirectory(prefix="mj-bench-up-") as d:
        runs = Path(d) / "runs"
        up = Up(Path(d) / "stack", MEDIAJOBS_IO_CONCURRENCY="4", MEDIAJOBS_KIND_MODULES=KINDS).start()
        try:
            started = time.monotonic()
            statuses, killed = burst(up, runs)
            posted = time.monotonic() - started
            done = wait_until(lambda: succeeded_in(up.data_dir / "mediajobs.db") >= BURST, 180, 0.2)
            elapsed = time.monotonic() - started
            restarted = "redis exited with code -9; restarting" in up.log()
        finally:
            code = up.stop()
        counts = Counter(line.split()[0] for line in runs.read_text().splitlines()) if runs.exists() else {}
        duplicates = sum(n - 1 for n in counts.values())
        print(
            f"{BURST} bench.count jobs through the API under `mediajobs up`, "
            f"redis-server SIGKILLed at POST {KILL_AT}"
        )
        print(
            f"  answers: {Counter(statuses)}; killed {killed}; supervisor restarted redis {restarted}; "
            f"`up` exit {code}"
        )
        print(f"  all POSTs answered in                   {posted:6.1f} s")
        verdict = f"{elapsed:6.1f} s after the burst began" if done else "NOT within 180 s"
        print(f"  all {BURST} succeeded                   {verdict}   (aim < 120 s)")
        print(f"  executions: {len(counts)} jobs ran, duplicates = {duplicates}")


# --- 3. Fan-out overhead ------------------------------------------------------------------------------------


def fan_out_round(api: httpx.Client, db_path: Path) -> float:
    started = time.perf_counter()
    job_id = api.post("/api/v1/jobs", json={"kind": "bench.fan", "params": {"n": FAN_CHILDREN}}).json()["id"]

    def state() -> str:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as db:
            return str(db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])

    if not wait_until(lambda: state() in ("succeeded", "failed"), 120, 0.005):
        raise RuntimeError("the fan-out did not end within 120 s")
    wall = time.perf_counter() - started
    if state() != "succeeded":
        raise RuntimeError(f"the fan-out ended {state()}")
    return wall


def independent_round(api_url: str, db_path: Path, before: int) -> float:
    """POST FAN_CHILDREN bench.noop jobs over 8 connections; the wall time until all have succeeded."""

    def top_level_done() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as db:
            row = db.execute(
                "SELECT count(*) FROM jobs WHERE kind = 'bench.noop' AND parent_id IS NULL "
                "AND state = 'succeeded'"
            )
            return int(row.fetchone()[0])

    started = time.perf_counter()
    asyncio.run(submit_many(api_url, FAN_CHILDREN, 8, kind="bench.noop", params={}))
    if not wait_until(lambda: top_level_done() >= before + FAN_CHILDREN, 120, 0.005):
        raise RuntimeError("the independent jobs did not end within 120 s")
    return time.perf_counter() - started


def fan_out_overhead(broker_url: str) -> None:
    with stack(broker_url, queues="io,cpu,default", concurrency=4, kind_modules=KINDS) as s:
        db_path = s.directory / "data" / "mediajobs.db"
        fans: list[float] = []
        singles: list[float] = []
        with s.client() as api:
            fan_out_round(api, db_path)  # warm-up: pools, imports, first connections
            independent_round(s.api_url, db_path, 0)
            for i in range(FAN_ROUNDS):
                fans.append(fan_out_round(api, db_path))
                singles.append(independent_round(s.api_url, db_path, (i + 1) * FAN_CHILDREN))
        ratio = median(fans) / median(singles)
        print(f"fan-out overhead: {FAN_CHILDREN} no-op children vs {FAN_CHILDREN} independent no-op jobs")
        print(
            f"  (one stack, worker concurrency 4, {FAN_ROUNDS} interleaved rounds after a warm-up; medians)"
        )
        print(
            f"  parent → {FAN_CHILDREN} children → succeeded  {median(fans) * 1000:8.0f} ms  {_spread(fans)}"
        )
        print(
            f"  {FAN_CHILDREN} independent jobs (HTTP, 8 conns) {median(singles) * 1000:8.0f} ms  "
            f"{_spread(singles)}"
        )
        print(f"  ratio fan-out / independent           {ratio:8.2f}   (aim ≤ 1.2)")


def _spread(values: list[float]) -> str:
    return "[" + " ".join(f"{v * 1000:.0f}" for v in values) + "]"


@contextlib.contextmanager
def _section(name: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # one failed part must not hide the others' figures
        print(f"{name}: FAILED: {type(exc).__name__}: {exc}")


def main() -> None:
    with redis_server() as redis:
        with _section("postgres outage"):
            postgres_outage(redis.url.replace("/0", "/3"))
        with _section("fan-out overhead"):
            fan_out_overhead(redis.url.replace("/0", "/4"))
    with _section("redis kill burst"):
        redis_kill_burst()


if __name__ == "__main__":
    main()
