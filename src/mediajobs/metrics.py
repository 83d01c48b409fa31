"""Prometheus metrics, read from the database of record and the broker at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select

from mediajobs.broker import QUEUES
from mediajobs.config import Settings
from mediajobs.db.models import Job, Media, utcnow
from mediajobs.db.session import Database

BUCKETS = (0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, float("inf"))


def queue_depths(broker_url: str) -> dict[str, int]:
    """Messages waiting per queue (Celery's Redis transport keeps one list per priority step)."""
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        depths = {}
        for name in QUEUES:
            keys = [name] + [f"{name}:{step}" for step in range(1, 10)]
            pipe = client.pipeline()
            for key in keys:
                pipe.llen(key)
            depths[name] = sum(pipe.execute())
        return depths
    finally:
        client.close()


class EngineCollector(Collector):
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        jobs = GaugeMetricFamily("mediajobs_jobs", "Jobs by state and kind", labels=["state", "kind"])
        media = GaugeMetricFamily("mediajobs_media", "Media assets by state", labels=["state"])
        with self.db.read() as session:
            for state, kind, count in session.execute(
                select(Job.state, Job.kind, func.count()).group_by(Job.state, Job.kind)
            ):
                jobs.add_metric([state, kind], count)
            for state, count in session.execute(select(Media.state, func.count()).group_by(Media.state)):
                media.add_metric([state], count)
            since = utcnow() - timedelta(hours=1)
            finished = session.execute(
                select(Job.kind, Job.started_at, Job.finished_at)
                .where(Job.finished_at >= since, Job.started_at.is_not(None))
                .limit(50000)
            ).all()
        yield jobs
        yield media
        durations = HistogramMetricFamily(
            "mediajobs_job_duration_seconds", "Run time of jobs finished in the last hour", labels=["kind"]
        )
        by_kind: dict[str, list[float]] = {}
        for kind, started, ended in finished:
            if started is None or ended is None:
                continue
            by_kind.setdefault(kind, []).append((ended - started).total_seconds())
        for kind, values in by_kind.items():
            buckets = [
                (str(b) if b != float("inf") else "+Inf", sum(v <= b for v in values)) for b in BUCKETS
            ]
            durations.add_metric([kind], buckets, sum(values))
        yield durations
        depth = GaugeMetricFamily("mediajobs_queue_depth", "Messages waiting in the broker", labels=["queue"])
        up = GaugeMetricFamily("mediajobs_broker_up", "1 when the broker answered this scrape")
        try:
            for name, count in queue_depths(self.settings.broker_client_url).items():
                depth.add_metric([name], count)
            up.add_metric([], 1)
        except redis.RedisError:
            up.add_metric([], 0)
        yield depth
        yield up


def metrics_server(registry: CollectorRegistry, port: int) -> WSGIServer | None:
    """With MEDIAJOBS_METRICS_PORT set: /metrics on 127.0.0.1:PORT (a thread), not on the API's port."""
    if not port:
        return None
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server
