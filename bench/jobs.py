"""Job engine benchmark: HTTP submit → completion throughput beside raw Celery, submit and start latency."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bench.common import median, percentile, redis_server, stack

JOBS = 2000
CLIENTS = 32
LATENCY_CLIENTS = 100
LATENCY_JOBS = 2000
CONCURRENCY = 4

RAW_CELERY = """
import os
from celery import Celery
app = Celery("raw", broker=os.environ["RAW_BROKER"], backend=os.environ["RAW_BROKER"])
app.conf.update(worker_prefetch_multiplier=1, task_acks_late=True, worker_hijack_root_logger=False)

@app.task(name="raw.add")
def add(x, y):
    return x + y
"""


async def submit_many(api_url: str, count: int, clients: int) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                started = time.perf_counter()
                r = await client.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": i, "y": 1}})
                latencies.append(time.perf_counter() - started)
                assert r.status_code == 202, r.text

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


def count_done(db_url: str) -> int:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM jobs WHERE state IN ('succeeded','failed')")).scalar()
            or 0
        )


def mediajobs_throughput(broker_url: str) -> tuple[float, list[float], list[float]]:
    with stack(broker_url, queues="io,cpu,default", concurrency=CONCURRENCY) as s:
        db_url = f"sqlite:///{s.directory / 'data' / 'mediajobs.db'}"
        asyncio.run(submit_many(s.api_url, 50, 8))  # warm up connections and pools
        deadline = time.monotonic() + 60
        while count_done(db_url) < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        started = time.perf_counter()
        asyncio.run(submit_many(s.api_url, JOBS, CLIENTS))
        while count_done(db_url) < JOBS + 50:
            time.sleep(0.02)
        throughput = JOBS / (time.perf_counter() - started)
        # Submit latency with 100 clients, and enqueue → start latency on a lightly loaded system.
        submit_latencies = asyncio.run(submit_many(s.api_url, LATENCY_JOBS, LATENCY_CLIENTS))
        total = JOBS + 50 + LATENCY_JOBS
        while count_done(db_url) < total:
            time.sleep(0.05)
        start_latencies = []
        with httpx.Client(base_url=s.api_url) as client:
            for i in range(100):
                job = client.post(
                    "/api/v1/jobs", json={"kind": "test.add", "params": {"x": i, "y": 1}}
                ).json()
                while (done := client.get(f"/api/v1/jobs/{job['id']}").json())["started_at"] is None:
                    time.sleep(0.005)
                start_latencies.append(
                    (
                        datetime.fromisoformat(done["started_at"])
                        - datetime.fromisoformat(done["created_at"])
                    ).total_seconds()
                )
        return throughput, submit_latencies, start_latencies


def raw_celery_throughput(broker_url: str) -> float:
    with tempfile.TemporaryDirectory(prefix="mj-bench-raw-") as d:
        module = Path(d) / "rawbench.py"
        module.write_text(RAW_CELERY)
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "rawbench",
                "worker",
                "-c",
                str(CONCURRENCY),
                "-P",
                "prefork",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "WARNING",
            ],
            cwd=d,
            env={"PYTHONPATH": d, "PATH": "/usr/bin:/bin", "RAW_BROKER": broker_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            sys.path.insert(0, d)
            os.environ["RAW_BROKER"] = broker_url
            import rawbench  # type: ignore[import-not-found]

            for r in [rawbench.add.delay(1, 1) for _ in range(50)]:
                r.get(timeout=60)
            started = time.perf_counter()
            results = [rawbench.add.delay(i, 1) for i in range(JOBS)]
            for r in results:
                r.get(timeout=120)
            return JOBS / (time.perf_counter() - started)
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def main() -> None:
    with redis_server() as redis:
        print(f"job engine: {JOBS} test.add jobs, {CLIENTS} HTTP clients, worker concurrency {CONCURRENCY}")
        raw = raw_celery_throughput(redis.url.replace("/0", "/1"))
        print(f"  raw Celery (delay + result get)      {raw:8.1f} jobs/s")
        ours, submit_lat, start_lat = mediajobs_throughput(redis.url.replace("/0", "/2"))
        print(f"  mediajobs (HTTP submit → succeeded)   {ours:8.1f} jobs/s")
        print(f"  ratio mediajobs / raw Celery          {ours / raw:8.2f}   (aim ≥ 0.5)")
        print(
            f"  submit latency, {LATENCY_CLIENTS} clients: p50 {percentile(submit_lat, 50) * 1000:.1f} ms, "
            f"p99 {percentile(submit_lat, 99) * 1000:.1f} ms   (aim p99 < 25 ms)"
        )
        print(f"  enqueue → start latency: p50 {median(start_lat) * 1000:.1f} ms   (aim < 10 ms)")


if __name__ == "__main__":
    main()
