"""Getting committed jobs onto the broker: a fast path right after the commit and an outbox relay.

A job row is committed before any message exists, so a worker can never receive an id it cannot find. The
row is committed already claimed by the fast path (`published_at` set), which publishes from a background
thread and, if the broker refuses, clears the claim so that the relay publishes it once the broker is back.
Should a message be lost anyway (the process died between commit and publish, Redis lost its data), the
relay sends queued jobs again when they have waited `republish_after_s`. A message that goes out twice is
harmless: only one delivery wins the conditional queued → running update.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from mediajobs.db.models import Job, utcnow
from mediajobs.db.session import Database
from mediajobs.jobs import service, states
from mediajobs.jobs.registry import registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    job_id: str
    attempt: int
    queue: str
    priority: int
    soft_time_limit_s: float | None
    time_limit_s: float | None

    @classmethod
    def of(cls, job: Job) -> Message:
        kind = registry.get(job.kind) if job.kind in registry else None
        return cls(
            job_id=job.id,
            attempt=job.attempt,
            queue=job.queue,
            priority=job.priority,
            soft_time_limit_s=kind.soft_time_limit_s if kind else None,
            time_limit_s=kind.time_limit_s if kind else job.time_limit_s,
        )


def publish(message: Message) -> None:
    """Send one message; raises when the broker cannot take it."""
    from mediajobs.worker.app import TASK_NAME, get_celery

    get_celery().send_task(
        TASK_NAME,
        args=[message.job_id, message.attempt],
        queue=message.queue,
        priority=9 - message.priority,
        soft_time_limit=message.soft_time_limit_s,
        time_limit=message.time_limit_s,
        retry=False,
    )


class Publisher:
    """A background thread that publishes freshly committed jobs, so a POST never waits on the broker."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: queue.Queue[Message] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mediajobs-publisher", daemon=True)
        self._thread.start()

    def submit(self, message: Message) -> None:
        self._queue.put(message)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 200:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            failed: list[tuple[str, int]] = []
            for message in batch:
                try:
                    publish(message)
                except Exception as exc:  # the relay publishes it once the broker is back
                    log.warning("broker unavailable, job %s waits in the outbox: %s", message.job_id, exc)
                    failed.append((message.job_id, message.attempt))
            try:
                service.set_published(self.db, failed, published=False)
            except Exception:
                log.warning(
                    "could not return %d jobs to the outbox; the relay republishes them after "
                    "republish_after_s",
                    len(failed),
                    exc_info=True,
                )


_publishers: dict[int, Publisher] = {}
_publisher_lock = threading.Lock()


def publisher_for(db: Database) -> Publisher:
    with _publisher_lock:
        pub = _publishers.get(id(db))
        if pub is None:
            pub = _publishers[id(db)] = Publisher(db)
        return pub


def create_and_publish(
    db: Database,
    *,
    kind: str,
    params: dict[str, Any],
    priority: int | None = None,
    max_attempts: int | None = None,
    media_id: str | None = None,
    with_job: Callable[[Session, Job], None] | None = None,
) -> Job:
    """Record a job, then hand it to the publisher; the row is committed before any message exists.

    `with_job(session, job)` adds what must commit in the same transaction (an asset, an idempotency key).
    """
    job = service.new_job(
        kind=registry.get(kind),
        params=params,
        priority=priority,
        max_attempts=max_attempts,
        media_id=media_id,
    )
    with db.write() as session:
        session.add(job)
        if with_job is not None:
            with_job(session, job)
    publisher_for(db).submit(Message.of(job))
    return job


def relay(db: Database, *, republish_after_s: float = 600.0, limit: int = 500) -> int:
    """Publish due retries, jobs the fast path could not publish and long-queued ones; returns how many."""
    now = utcnow()
    with db.write() as session:
        session.execute(
            update(Job)
            .where(Job.state == states.RETRYING, Job.run_after <= now)
            .values(state=states.QUEUED, run_after=None, updated_at=now)
        )
    stale = now - timedelta(seconds=republish_after_s)
    with db.read() as session:
        pending = list(
            session.scalars(
                select(Job)
                .where(Job.state == states.QUEUED, or_(Job.published_at.is_(None), Job.published_at < stale))
                .order_by(Job.priority.desc(), Job.created_at)
                .limit(limit)
            )
        )
    sent: list[tuple[str, int]] = []
    for job in pending:
        try:
            publish(Message.of(job))
        except Exception as exc:
            log.warning(
                "relay: broker unavailable (%s); %d jobs wait in the outbox", exc, len(pending) - len(sent)
            )
            break
        sent.append((job.id, job.attempt))
    service.set_published(db, sent, published=True)
    if sent:
        log.info("relay published %d job(s) from the outbox", len(sent))
    return len(sent)
