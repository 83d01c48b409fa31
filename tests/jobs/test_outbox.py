"""The outbox: a committed job reaches the broker once, though the broker refused it or relays ran together.

In-process, with a broker that records what it is sent. Broker restarts and outages for real (a Redis that
loses its data or stops answering): tests/jobs/test_broker.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import redis

from mediajobs.db.models import utcnow
from mediajobs.jobs import lifecycle, maintenance, outbox, states
from mediajobs.jobs.hooks import Services
from mediajobs.testing.servers import RedisServer, wait_for
from mediajobs.worker import runner
from tests.jobs.conftest import Engine


def relay(engine: Engine) -> int:
    return outbox.relay(engine.db, engine.broker, republish_after_s=engine.settings.republish_after_s)  # type: ignore[arg-type]


def unpublished(engine: Engine, job_id: str) -> bool:
    return engine.job(job_id).published_at is None


def test_a_job_the_broker_refused_waits_in_the_outbox_until_the_relay_sends_it_once(engine: Engine) -> None:
    engine.broker.refusing = True
    job = engine.submit("test.add", {"x": 1, "y": 2})
    wait_for(lambda: unpublished(engine, job.id), timeout_s=5, message="the refused job back in the outbox")
    assert relay(engine) == 0 and unpublished(engine, job.id)

    engine.broker.refusing = False

    assert relay(engine) == 1
    assert relay(engine) == 0
    assert engine.broker.sent(job.id) == [1]
    assert engine.job(job.id).state == states.QUEUED


def test_relays_running_side_by_side_send_each_job_once(engine: Engine) -> None:
    engine.broker.refusing = True
    jobs = [engine.submit("test.add", {"x": i, "y": 0}) for i in range(30)]
    wait_for(lambda: all(unpublished(engine, job.id) for job in jobs), message="all 30 in the outbox")
    engine.broker.refusing = False
    sent: list[int] = []
    relays = [threading.Thread(target=lambda: sent.append(relay(engine))) for _ in range(3)]

    for thread in relays:
        thread.start()
    for thread in relays:
        thread.join()

    assert sum(sent) == 30
    assert Counter(m.job_id for m in engine.broker.messages) == {job.id: 1 for job in jobs}


def test_a_retry_is_queued_and_sent_once_its_backoff_has_passed(engine: Engine, tmp_path: Path) -> None:
    job = engine.submit("tests.flaky", {"fail_times": 1, "counter": str(tmp_path / "count")})
    engine.broker.wait_sent(job.id, 1)
    runner.run(engine.services, job.id, 1)
    waiting = engine.job(job.id)
    assert (waiting.state, waiting.attempt, waiting.error["code"]) == (
        states.RETRYING,
        2,
        "source_unreachable",
    )

    lifecycle.release_retries(engine.services, now=waiting.run_after - timedelta(seconds=1))
    assert relay(engine) == 0 and engine.job(job.id).state == states.RETRYING

    lifecycle.release_retries(engine.services, now=waiting.run_after)
    assert relay(engine) == 1

    assert engine.broker.sent(job.id) == [1, 2]
    assert engine.run_to_end(job.id).state == states.SUCCEEDED


def test_after_a_broker_restart_every_queued_job_is_sent_again_and_runs_once(
    engine: Engine, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    jobs = [engine.submit("tests.count", {"path": str(runs)}) for _ in range(3)]
    for job in jobs:
        engine.broker.wait_sent(job.id, 1)

    assert outbox.republish(engine.db, engine.broker, before=utcnow()) == 3  # type: ignore[arg-type]

    assert [engine.broker.sent(job.id) for job in jobs] == [[1, 1]] * 3
    engine.work(lambda: engine.broker.pending() == 0)  # duplicates included: their claims find nothing queued
    assert sorted(runs.read_text().splitlines()) == sorted(f"{job.id} 1" for job in jobs)


def test_a_job_queued_longer_than_republish_after_s_is_sent_again(engine: Engine) -> None:
    job = engine.submit("test.add", {"x": 1, "y": 2})
    engine.broker.wait_sent(job.id, 1)
    assert relay(engine) == 0

    sent = outbox.relay(engine.db, engine.broker, republish_after_s=0.0)  # type: ignore[arg-type]

    assert sent == 1 and engine.broker.sent(job.id) == [1, 1]


def test_a_process_looks_at_a_new_broker_before_it_publishes_so_its_own_fresh_jobs_are_not_sent_twice(
    engine: Engine, tmp_path: Path
) -> None:
    # A broker with no record of earlier runs may have lost messages, so the first look at it sends every
    # queued job again. Jobs this process submits after it started were sent to this very broker: the look
    # must come first (start() returns after it), or a POST right after start-up is sent twice.
    broker = RedisServer(tmp_path / "broker").start()
    try:
        settings = engine.settings.model_copy(
            update={"broker_url": broker.url, "maintenance_interval_s": 0.05}
        )
        services = Services(db=engine.db, settings=settings, broker=engine.broker)  # type: ignore[arg-type]
        loop = maintenance.Maintenance(services).start()
        try:
            job = engine.submit("test.add", {"x": 1, "y": 2})
            engine.broker.wait_sent(job.id, 1)
            wait_for(
                lambda: redis.Redis.from_url(broker.url).get(outbox.RUN_ID_KEY),
                timeout_s=5,
                message="the maintenance loop's look at the broker",
            )
            time.sleep(20 * 0.05)  # twenty more rounds: none may send it again
            assert engine.broker.sent(job.id) == [1]
        finally:
            loop.stop()
    finally:
        broker.stop()
