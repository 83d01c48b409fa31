"""Shared set-up for the benchmarks: a real Redis and a real mediajobs stack in a temp dir."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mediajobs.testing.servers import RedisServer
from mediajobs.testing.stacks import Stack, stack_env


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
    broker_url: str, *, queues: str = "io,cpu,default", concurrency: int = 4, **settings: str
) -> Iterator[Stack]:
    """An API and one worker in a temp dir, with the default engine timings; `settings` by their names."""
    with tempfile.TemporaryDirectory(prefix="mj-bench-") as d:
        directory = Path(d)
        env = stack_env(directory, broker_url=broker_url, timings={}, **settings)
        s = Stack(directory, env).start([(queues, concurrency)])
        try:
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
