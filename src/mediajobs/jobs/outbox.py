"""Getting committed jobs onto the broker: a fast path right after the commit and an outbox relay.

A job row is committed before any message exists, so a worker can never receive an id it cannot find. The
row is committed already claimed by the fast path (`published_at` set), which publishes from a background
thread and, if the broker refuses, clears the claim so that the relay publishes it once the broker is back.
The relay claims rows (a conditional update of `published_at`) before sending them, so processes running it
side by side do not send the same job each. When the broker restarted (a new Redis `run_id`) or came back
after this process lost it, messages may be gone (the last second of AOF, a worker's prefetched messages
parked in kombu's unacked hash until the visibility timeout): `BrokerWatch` notices, and every queued job is
sent again at once, once per such event across all processes. Anything else lost is sent again when it has
waited `republish_after_s`. A message that goes out twice is harmless: only one delivery wins the
conditional queued → running update.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from datetime import datetime, timedelta

import redis
from sqlalchemy import or_, select, update

from mediajobs.broker import Broker, Message
from mediajobs.db.models import Job, utcnow
from mediajobs.db.session import Database
from mediajobs.jobs import rows, states
from mediajobs.jobs.registry import registry

log = logging.getLogger(__name__)


def message_of(job: Job) -> Message:
    """The broker message of a job's current attempt, with its kind's time limits."""
    kind = registry.get(job.kind) if job.kind in registry else None
    return Message(
        job_id=job.id,
        attempt=job.attempt,
        queue=job.queue,
        priority=job.priority,
        soft_time_limit_s=kind.soft_time_limit_s if kind else None,
        time_limit_s=kind.time_limit_s if kind else job.time_limit_s,
        kind=job.kind,
    )


class Publisher:
    """A background thread that publishes freshly committed jobs, so a POST never waits on the broker."""

    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker
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
                    self.broker.publish(message)
                except Exception as exc:  # the relay publishes it once the broker is back
                    log.warning("broker unavailable, job %s waits in the outbox: %s", message.job_id, exc)
                    failed.append((message.job_id, message.attempt))
            try:
                rows.set_published(self.db, failed, published=False)
            except Exception:
                log.warning(
                    "could not return %d jobs to the outbox; the relay republishes them after "
                    "republish_after_s",
                    len(failed),
                    exc_info=True,
                )


_publishers: dict[tuple[int, int], Publisher] = {}
_publisher_lock = threading.Lock()


def publisher_for(db: Database, broker: Broker) -> Publisher:
    with _publisher_lock:
        pub = _publishers.get((id(db), id(broker)))
        if pub is None:
            pub = _publishers[(id(db), id(broker))] = Publisher(db, broker)
        return pub


def relay(db: Database, broker: Broker, *, republish_after_s: float = 600.0, limit: int = 500) -> int:
    """Publish queued jobs that the fast path could not publish (retries released by `lifecycle`, jobs the
    broker refused) and long-queued ones; returns how many."""
    now = utcnow()
    sent, _ = _publish_due(db, broker, stale=now - timedelta(seconds=republish_after_s), limit=limit)
    if sent:
        log.info("relay published %d job(s) from the outbox", sent)
    return sent


def republish(db: Database, broker: Broker, *, before: datetime, limit: int = 500) -> int:
    """Send again every queued job whose message went out before `before`; returns how many."""
    total = 0
    while True:
        sent, complete = _publish_due(db, broker, stale=before, limit=limit)
        total += sent
        if not complete or sent < limit:
            return total


def _publish_due(db: Database, broker: Broker, *, stale: datetime, limit: int) -> tuple[int, bool]:
    """Claim queued jobs unpublished or published before `stale`, and send them: (sent, broker took all)."""
    due = (Job.state == states.QUEUED, or_(Job.published_at.is_(None), Job.published_at < stale))
    with db.read() as session:
        ids = list(
            session.scalars(
                select(Job.id).where(*due).order_by(Job.priority.desc(), Job.created_at).limit(limit)
            )
        )
    if not ids:
        return 0, True
    with db.write() as session:
        claimed_rows = session.execute(
            update(Job)
            .where(Job.id.in_(ids), *due)
            .values(published_at=utcnow())
            .returning(
                Job.id, Job.kind, Job.attempt, Job.queue, Job.priority, Job.time_limit_s, Job.created_at
            )
            .execution_options(synchronize_session=False)
        ).all()
    claimed = sorted((Job(**row._mapping) for row in claimed_rows), key=lambda j: (-j.priority, j.created_at))
    for sent, job in enumerate(claimed):
        try:
            broker.publish(message_of(job))
        except Exception as exc:
            unsent = [(j.id, j.attempt) for j in claimed[sent:]]
            log.warning("relay: broker unavailable (%s); %d job(s) wait in the outbox", exc, len(unsent))
            rows.set_published(db, unsent, published=False)
            return sent, False
    return len(claimed), True


RUN_ID_KEY = "mediajobs:broker:run_id"
REPUBLISHED_KEY = "mediajobs:broker:republished:"
# Processes that come back within this long after one of them republished for the same broker run do not
# republish again: one outage, one republish.
REPUBLISH_GUARD_S = 30


class BrokerWatch:
    """Tells, once per broker restart or outage across all processes, that queued jobs must be sent again.

    A restart shows as a Redis `run_id` other than the one recorded in the broker itself (`SET … GET`, so
    exactly one process sees the change, even one started after the restart); an outage as this process
    failing to reach the broker and then reaching it. Either way a key per broker run makes the first process
    to claim it the only one to republish.
    """

    def __init__(self, url: str) -> None:
        self._run_id: str | None = None
        self._claim: str | None = None  # the event this process claimed to republish for
        self._lost = False
        try:
            self._client: redis.Redis | None = redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=2
            )
        except ValueError:  # a URL only kombu reads (sentinel://…): republish_after_s alone catches losses
            log.warning(
                "cannot watch the broker for restarts with redis-py; lost messages wait republish_after_s"
            )
            self._client = None

    def should_republish(self) -> bool:
        if self._client is None:
            return False
        try:
            run_id = str(self._client.info("server")["run_id"])
            if run_id == self._run_id and not self._lost:
                return False
            previous = self._client.set(RUN_ID_KEY, run_id, get=True)
            restarted = not isinstance(previous, bytes) or previous.decode() != run_id
            # A restart and an outage of the same run are different events, each claimed once across
            # processes: a first look at a new run must not hide an outage that follows within the guard.
            claim = REPUBLISHED_KEY + run_id + (":restart" if restarted else ":outage")
            won = (restarted or self._lost) and bool(
                self._client.set(claim, "1", nx=True, ex=REPUBLISH_GUARD_S)
            )
        except redis.RedisError:
            self._lost = True
            return False
        if restarted and previous:
            log.warning("the broker restarted (run_id %s); queued jobs' messages may be gone", run_id)
        elif restarted:
            # A first start, or a broker whose data is gone: what was queued is sent again either way, and
            # the maintenance loop says so when there was anything to send (a first start is quiet).
            log.debug("the broker has no record of earlier runs (run_id %s)", run_id)
        self._run_id, self._lost = run_id, False
        self._claim = claim if won else None
        return won

    def republish_failed(self) -> None:
        """Give the event back (the database was unreachable, say), so that the next round tries again."""
        self._lost = True
        if self._client is not None and self._claim is not None:
            with contextlib.suppress(redis.RedisError):
                self._client.delete(self._claim)
            self._claim = None
