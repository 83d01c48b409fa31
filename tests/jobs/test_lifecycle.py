"""Every move of a job does its consequences itself (publishing, end hooks), whoever calls it.

Most tests run the engine in this process (tests/jobs/conftest.py: SQLite and a broker that records what it
is sent); the last ones use a real Redis, a real worker and the API.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from mediajobs import bootstrap
from mediajobs.config import Settings
from mediajobs.db.migrate import migrate
from mediajobs.jobs import lifecycle, rows, states
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.lifecycle import ParamsRejected
from mediajobs.media import assets
from mediajobs.testing.servers import RedisServer, wait_for
from mediajobs.worker import runner
from tests.conftest import submit, wait_state
from tests.jobs.conftest import Engine


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_submit_commits_the_job_then_publishes_it_with_its_kinds_queue_and_limits(engine: Engine) -> None:
    job = engine.submit("tests.slow_subprocess", {"pidfile": "/dev/null"}, priority=8)

    message = engine.broker.wait_sent(job.id, 1)
    assert engine.job(job.id).state == states.QUEUED
    assert (message.queue, message.priority, message.kind) == ("cpu", 8, "tests.slow_subprocess")
    assert (message.soft_time_limit_s, message.time_limit_s) == (1.5, 10.0)


def test_submit_with_params_that_do_not_fit_names_the_field_and_records_nothing(engine: Engine) -> None:
    with pytest.raises(ParamsRejected) as refused:
        engine.submit("tests.count", {"seconds": "soon"})

    assert {error["loc"] for error in refused.value.errors} == {("path",), ("seconds",)}
    assert list(rows.list_jobs(engine.db).items) == []
    assert engine.broker.messages == []


def test_a_queued_job_cancelled_ends_at_once_runs_its_end_hook_once_and_never_starts(
    engine: Engine, tmp_path: Path
) -> None:
    ends = tmp_path / "ends"
    job = engine.submit("tests.hooked", {"ends": str(ends)})
    engine.broker.wait_sent(job.id, 1)

    cancelled, changed = lifecycle.cancel(engine.services, job.id)
    again, changed_again = lifecycle.cancel(engine.services, job.id)
    runner.run(engine.services, job.id, 1)  # its message arrives after all

    assert (cancelled.state, changed, changed_again) == (states.CANCELLED, True, False)
    assert again.state == states.CANCELLED and engine.job(job.id).started_at is None
    assert lines(ends) == [f"{job.id} cancelled"]


def test_a_job_cancelled_by_a_media_delete_runs_its_end_hook_once(engine: Engine, tmp_path: Path) -> None:
    media = assets.new_media(source={"type": "upload"})
    with engine.db.write() as session:
        session.add(media)
    ends = tmp_path / "ends"
    waiting = engine.submit("tests.hooked", {"ends": str(ends)}, media_id=media.id)
    deleting = engine.submit("media.delete", media_id=media.id)
    engine.broker.wait_sent(deleting.id, 1)

    runner.run(engine.services, deleting.id, 1)  # the delete job's handler cancels what the asset still has

    assert engine.job(deleting.id).state == states.SUCCEEDED
    assert engine.job(waiting.id).state == states.CANCELLED
    assert lines(ends) == [f"{waiting.id} cancelled"]


def test_retry_queues_a_new_attempt_and_publishes_it_by_itself(engine: Engine, tmp_path: Path) -> None:
    job = engine.submit("tests.count", {"path": str(tmp_path / "runs")})
    lifecycle.cancel(engine.services, job.id)

    retried = lifecycle.retry(engine.services, job.id)

    assert (retried.state, retried.attempt) == (states.QUEUED, 2)
    engine.broker.wait_sent(job.id, 2)
    assert engine.run_to_end(job.id).state == states.SUCCEEDED
    assert lines(tmp_path / "runs") == [f"{job.id} 2"]  # the cancelled first attempt never ran


def test_a_transient_failure_is_retried_until_it_succeeds(engine: Engine, tmp_path: Path) -> None:
    job = engine.submit("tests.flaky", {"fail_times": 2, "counter": str(tmp_path / "count")})

    done = engine.run_to_end(job.id, relay=True)

    assert (done.state, done.attempt, done.result) == (states.SUCCEEDED, 3, 3)
    assert engine.broker.sent(job.id) == [1, 2, 3]


def test_a_handed_back_job_is_queued_again_at_once_using_up_no_attempt(engine: Engine) -> None:
    job = engine.submit("tests.count", {"path": "/dev/null"})
    engine.broker.wait_sent(job.id, 1)  # a worker starts what it is sent (submit publishes in the background)
    lifecycle.start(engine.services, job_id=job.id, attempt=1, worker="stopping")

    handed = lifecycle.hand_back(engine.services, job_id=job.id, attempt=1)

    assert handed is not None and (handed.state, handed.attempt, handed.max_attempts) == ("queued", 2, 4)
    assert engine.broker.sent(job.id) == [1, 2]  # published from here, not by the background publisher


def test_a_hand_back_the_broker_refuses_waits_for_the_relay(engine: Engine) -> None:
    job = engine.submit("tests.count", {"path": "/dev/null"})
    engine.broker.wait_sent(job.id, 1)
    lifecycle.start(engine.services, job_id=job.id, attempt=1, worker="stopping")
    engine.broker.refusing = True

    handed = lifecycle.hand_back(engine.services, job_id=job.id, attempt=1)

    assert handed is not None and handed.attempt == 2
    assert engine.job(job.id).published_at is None  # the relay's to send once the broker answers


def test_enqueue_with_params_that_do_not_fit_fails_the_calling_job_with_invalid_params(
    engine: Engine,
) -> None:
    parent = engine.submit("tests.spawn", {"kind": "tests.count", "params": {"seconds": "soon"}})

    done = engine.run_to_end(parent.id)

    assert done.state == states.FAILED and done.error["code"] == "invalid_params"
    assert "invalid params for tests.count" in done.error["message"]
    assert "path" in done.error["message"] and "seconds" in done.error["message"]
    assert [job.id for job in rows.list_jobs(engine.db).items] == [parent.id]


ROOT = Path(__file__).resolve().parents[2]


def queued_messages(url: str) -> list[tuple[str, int]]:
    """(job id, attempt) of every message waiting in the broker's job queues."""
    client = redis.Redis.from_url(url)
    found = []
    for key in client.scan_iter("*"):
        if key.split(b":")[0] in (b"default", b"io", b"cpu") and client.type(key) == b"list":
            for raw in client.lrange(key, 0, -1):
                args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
                found.append((str(args[0]), int(args[1])))
    return found


@pytest.fixture
def redis_services(tmp_path: Path) -> Iterator[Services]:
    """The Services of a process on a migrated SQLite and a Redis of this test's own."""
    broker = RedisServer(tmp_path / "redis").start()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        broker_url=broker.url,
        kind_modules="tests.kinds",
        temp_dir=tmp_path / "tmp",
    )
    services = bootstrap.services(settings)
    migrate(services.db)
    try:
        yield services
    finally:
        broker.stop()


def test_retry_publishes_the_job_to_redis_by_itself(redis_services: Services, tmp_path: Path) -> None:
    engine = redis_services
    url = engine.settings.effective_broker_url
    job = lifecycle.submit(engine, kind="tests.count", params={"path": str(tmp_path / "runs")})
    wait_for(lambda: (job.id, 1) in queued_messages(url), message="the 1st message")
    lifecycle.cancel(engine, job.id)
    redis.Redis.from_url(url).flushdb()

    retried = lifecycle.retry(engine, job.id)

    assert retried.state == states.QUEUED and retried.attempt == 2
    wait_for(lambda: queued_messages(url) == [(job.id, 2)], timeout_s=5, message="the retried job's message")


def test_enqueue_starts_the_follow_up_job(api: httpx.Client, tmp_path: Path) -> None:
    parent = submit(api, "tests.spawn", {"kind": "tests.count", "params": {"path": str(tmp_path / "r")}})
    done = wait_state(api, parent["id"], "failed", "succeeded")
    assert done["state"] == "succeeded", done["error"]
    assert wait_state(api, done["result"], "succeeded", "failed")["state"] == "succeeded"


PUBLISH_WITHOUT_WORKER = """
import sys, time
from mediajobs import bootstrap
from mediajobs.config import Settings
from mediajobs.db.migrate import migrate
from mediajobs.jobs import context, outbox, lifecycle, maintenance, reaper, rows

settings = Settings(database_url=sys.argv[1], broker_url=sys.argv[2], data_dir=sys.argv[3])
services = bootstrap.services(settings)
migrate(services.db)
job = lifecycle.submit(services, kind="test.add", params={"x": 1, "y": 2})
worker_modules = sorted(m for m in sys.modules if m.startswith("mediajobs.worker"))
from tests.jobs.test_lifecycle import queued_messages  # after that look: this test module runs jobs

deadline = time.monotonic() + 10
while (job.id, 1) not in queued_messages(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.05)
print("published" if (job.id, 1) in queued_messages(sys.argv[2]) else "not published")
print(worker_modules)
"""


def test_the_engine_submits_and_publishes_without_importing_the_worker(tmp_path: Path) -> None:
    broker = RedisServer(tmp_path / "redis").start()
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                PUBLISH_WITHOUT_WORKER,
                f"sqlite:///{tmp_path / 'jobs.db'}",
                broker.url,
                str(tmp_path / "data"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        broker.stop()
    assert out.stdout.splitlines() == ["published", "[]"], out.stderr


def test_celery_finds_the_worker_app_as_flower_is_pointed_at_it(tmp_path: Path) -> None:
    env = {**os.environ, "MEDIAJOBS_BROKER_URL": "redis://127.0.0.1:1/0", "MEDIAJOBS_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "mediajobs.worker", "report"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "127.0.0.1:1/0'" in out.stdout  # the app built from this environment's Settings
