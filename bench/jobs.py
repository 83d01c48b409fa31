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
from typing import Any, NamedTuple

import httpx
from sqlalchemy import create_engine, text

from bench.common import median, percentile, redis_server, stack

JOBS = 2000
CLIENTS = 32
LATENCY_CLIENTS = 100
LATENCY_JOBS = 2000
# Open loop: fixed-rate arrivals at half the measured peak, for this long, on a pool of this many connections.
OPEN_LOOP_S = 10.0
OPEN_LOOP_CONNECTIONS = 32
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
            started = time.perf_counter()
            await _post(host, reader, writer, body)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _post(host: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> None:
    """One POST /api/v1/jobs on a keep-alive connection, its answer read in full; it must be 202."""
    request = (
        f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
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
    status = int(head.split(b" ", 2)[1])
    assert status == 202, head


async def submit_open_loop(api_url: str, rate: float, count: int, connections: int) -> list[float]:
    """Submit `count` jobs at a fixed `rate`, whatever the answers' pace; each latency from its send time.

    Closed-loop clients wait for an answer before sending again, so a slow answer also delays (and hides)
    the requests behind it. Here arrivals are scheduled at 1/rate intervals, a request waits for a free
    connection of the pool if it must, and that wait counts: the figure a service level is written against.
    """
    host, port = api_url.removeprefix("http://").split(":")
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, int(port)))
    latencies: list[float] = []

    async def send(i: int, scheduled: float) -> None:
        reader, writer = await pool.get()
        try:
            body = json.dumps({"kind": "test.add", "params": {"x": i, "y": 1}}).encode()
            await _post(host, reader, writer, body)
            latencies.append(time.perf_counter() - scheduled)
        finally:
            pool.put_nowait((reader, writer))

    loop = asyncio.get_running_loop()
    tasks = []
    begin = time.perf_counter() + 0.05
    for i in range(count):
        scheduled = begin + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(send(i, scheduled)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return latencies


async def submit_many(
    api_url: str, count: int, clients: int, *, kind: str = "test.add", params: dict[str, Any] | None = None
) -> list[float]:
    host, port = api_url.removeprefix("http://").split(":")
    bodies: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(count):
        body = {"kind": kind, "params": {"x": i, "y": 1} if params is None else params}
        bodies.put_nowait(json.dumps(body).encode())
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


class Figures(NamedTuple):
    throughput: float
    submit: list[float]
    start: list[float]
    open_rate: float
    open_loop: list[float]


def mediajobs_throughput(broker_url: str) -> Figures:
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
        # Open loop at half the peak (the end-to-end throughput above: the rate the stack can sustain).
        rate = throughput / 2
        count = int(rate * OPEN_LOOP_S)
        open_latencies = asyncio.run(submit_open_loop(s.api_url, rate, count, OPEN_LOOP_CONNECTIONS))
        total += len(start_latencies) + count
        while count_done(db_url) < total:
            time.sleep(0.05)
        return Figures(throughput, submit_latencies, start_latencies, rate, open_latencies)


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
        ours = mediajobs_throughput(redis.url.replace("/0", "/2"))
        print(f"  mediajobs (HTTP submit → succeeded)   {ours.throughput:8.1f} jobs/s")
        print(f"  ratio mediajobs / raw Celery          {ours.throughput / raw:8.2f}   (aim ≥ 0.5)")
        print(
            f"  submit latency, {LATENCY_CLIENTS} clients (closed loop): p50 "
            f"{percentile(ours.submit, 50) * 1000:.1f} ms, p99 {percentile(ours.submit, 99) * 1000:.1f} ms"
        )
        print(
            f"  submit latency, open loop at {ours.open_rate:.0f}/s (half the peak), {len(ours.open_loop)} "
            f"jobs, {OPEN_LOOP_CONNECTIONS} connections: p50 {percentile(ours.open_loop, 50) * 1000:.1f} ms, "
            f"p99 {percentile(ours.open_loop, 99) * 1000:.1f} ms   (aim p99 < 25 ms)"
        )
        print(f"  enqueue → start latency: p50 {median(ours.start) * 1000:.1f} ms   (aim < 10 ms)")


if __name__ == "__main__":
    main()
