"""The reaper: a running job whose worker went silent is queued again or ended, never left running.

In-process (tests/jobs/conftest.py); killed worker processes for real: tests/jobs/test_engine.py and
tests/jobs/test_fanout.py.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from mediajobs.db.models import Job, utcnow
from mediajobs.jobs import lifecycle, states
from mediajobs.jobs.reaper import reap
from tests.jobs.conftest import Engine

TIMEOUT_S = 5.0


def started(engine: Engine, kind: str = "tests.count", **params: object) -> Job:
    """A job that a worker took (running, attempt 1) and then stopped heartbeating for twice the timeout."""
    job = engine.submit(kind, {"path": "/dev/null", **params})
    assert lifecycle.start(engine.services, job_id=job.id, attempt=1, worker="gone:1") is not None
    engine.age_heartbeat(job.id, 2 * TIMEOUT_S)
    return job


def test_a_job_whose_worker_went_silent_is_queued_again_as_its_next_attempt_and_sent_at_once(
    engine: Engine,
) -> None:
    job = started(engine)

    assert reap(engine.services, heartbeat_timeout_s=TIMEOUT_S) == 1

    requeued = engine.job(job.id)
    assert (requeued.state, requeued.attempt, requeued.worker) == (states.QUEUED, 2, None)
    assert requeued.error["code"] == "worker_lost" and "gone:1" in requeued.error["message"]
    engine.broker.wait_sent(job.id, 2)
    assert engine.run_to_end(job.id).state == states.SUCCEEDED


def test_on_its_last_attempt_it_fails_with_worker_lost_and_its_end_hook_runs_once(
    engine: Engine, tmp_path: Path
) -> None:
    ends = tmp_path / "ends"
    job = engine.submit("tests.hooked", {"ends": str(ends)}, max_attempts=1)
    lifecycle.start(engine.services, job_id=job.id, attempt=1, worker="gone:1")
    engine.age_heartbeat(job.id, 2 * TIMEOUT_S)

    assert reap(engine.services, heartbeat_timeout_s=TIMEOUT_S) == 1
    assert reap(engine.services, heartbeat_timeout_s=TIMEOUT_S) == 0

    done = engine.job(job.id)
    assert (done.state, done.error["code"]) == (states.FAILED, "worker_lost")
    assert "last attempt" in done.error["message"]
    assert ends.read_text().splitlines() == [f"{job.id} failed"]


def test_past_its_time_limit_it_fails_with_timeout(engine: Engine) -> None:
    job = started(engine, "tests.slow_subprocess", pidfile="/dev/null")  # time limit 10 s
    with engine.db.write() as session:
        session.execute(
            update(Job).where(Job.id == job.id).values(started_at=utcnow() - timedelta(seconds=11))
        )

    reap(engine.services, heartbeat_timeout_s=TIMEOUT_S)

    done = engine.job(job.id)
    assert (done.state, done.error["code"]) == (states.FAILED, "timeout")


def test_with_a_cancel_asked_for_it_ends_cancelled(engine: Engine) -> None:
    job = started(engine)
    lifecycle.cancel(engine.services, job.id)  # running: only asks its (silent) worker to stop

    reap(engine.services, heartbeat_timeout_s=TIMEOUT_S)

    done = engine.job(job.id)
    assert (done.state, done.attempt, done.error["code"]) == (states.CANCELLED, 1, "cancelled")


def test_a_job_still_heartbeating_and_a_parent_waiting_for_its_children_are_left_alone(
    engine: Engine, tmp_path: Path
) -> None:
    alive = engine.submit("tests.count", {"path": "/dev/null"})
    lifecycle.start(engine.services, job_id=alive.id, attempt=1, worker="here:1")
    parent = engine.submit("fan.split", {"n": 2, "runs": str(tmp_path / "runs"), "seconds": 30})
    engine.work(lambda: engine.job(parent.id).fan_phase == "waiting")
    engine.age_heartbeat(parent.id, 2 * TIMEOUT_S)

    assert reap(engine.services, heartbeat_timeout_s=TIMEOUT_S) == 0

    assert engine.job(alive.id).state == engine.job(parent.id).state == states.RUNNING


def test_right_after_a_database_outage_no_heartbeat_counts_as_missed_yet(engine: Engine) -> None:
    job = started(engine)
    engine.db.unreachable_at = time.monotonic()  # this process just could not reach the database

    assert reap(engine.services, heartbeat_timeout_s=TIMEOUT_S) == 0

    assert engine.job(job.id).state == states.RUNNING
