"""Shared set-up for the benchmarks: a real Redis and a real mediajobs stack in a temp dir."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import RedisServer, Stack, base_env


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="mj-bench-redis-") as d:
        server = RedisServer(Path(d)).start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def stack(
    broker_url: str, *, queues: str = "io,cpu,default", concurrency: int = 4, **env: str
) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="mj-bench-") as d:
        directory = Path(d)
        values = {
            "MEDIAJOBS_BROKER_URL": broker_url,
            "MEDIAJOBS_DATA_DIR": str(directory / "data"),
            **{f"MEDIAJOBS_{k.upper()}": v for k, v in env.items()},
        }
        s = Stack(directory, base_env(**values))
        try:
            s.start_api()
            s.start_worker(queues, concurrency)
            yield s
        finally:
            s.stop()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
