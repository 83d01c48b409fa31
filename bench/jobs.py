"""Job engine benchmark: HTTP submit → completion throughput beside raw Celery, submit and start latency."""

from __future__ import annotations

import asyncio
import json
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


async def _post_loop(host: str, port: int, bodies: asyncio.Queue[bytes], latencies: list[float]) -> None:
    """One keep-alive HTTP/1.1 connection posting jobs until the queue is empty.

    A minimal client on purpose: httpx's own overhead (about 3 ms a request here) would otherwise be most
    of what the benchmark measures on a 2-core machine, while Celery's baseline uses its lean producer.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while not bodies.empty():
            body = bodies.get_nowait()
            request = (
                f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":", 1)[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(head.split(b" ", 2)[1])
            assert status == 202, head
    finally:
        writer.close()


async def submit_many(api_url: str, count: int, clients: int) -> list[float]:
    host, port = api_url.removeprefix("http://").split(":")
    bodies: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(count):
        bodies.put_nowait(json.dumps({"kind": "test.add", "params": {"x": i, "y": 1}}).encode())
    latencies: list[float] = []
    await asyncio.gather(*(_post_loop(host, int(port), bodies, latencies) for _ in range(clients)))
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
