"""One lifecycle: every move of a job does its consequences itself (hooks, publishing), whoever calls it."""

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

from mediajobs.broker import broker_for
from mediajobs.config import Settings, get_settings
from mediajobs.db.migrate import migrate
from mediajobs.db.session import Database, get_db
from mediajobs.jobs import lifecycle, rows, states
from mediajobs.jobs.registry import load_kinds
from mediajobs.media import assets
from tests.conftest import submit, wait_state
from tests.servers import RedisServer, wait_for

ROOT = Path(__file__).resolve().parent.parent


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
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, Database]]:
    """Settings as a worker process has them (from its environment), a migrated SQLite and its own Redis."""
    broker = RedisServer(tmp_path / "redis").start()
    env = {
        "MEDIAJOBS_DATA_DIR": str(tmp_path / "data"),
        "MEDIAJOBS_DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "MEDIAJOBS_BROKER_URL": broker.url,
        "MEDIAJOBS_KIND_MODULES": "tests.kinds",
        "MEDIAJOBS_TEMP_DIR": str(tmp_path / "tmp"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    settings = get_settings()
    load_kinds(settings.kind_modules)
    db = get_db(settings.effective_database_url)
    migrate(db)
    try:
        yield settings, db
    finally:
        get_settings.cache_clear()
        broker.stop()


def test_a_job_cancelled_by_a_media_delete_runs_its_end_hook_once(
    engine: tuple[Settings, Database], tmp_path: Path
) -> None:
    from mediajobs.worker.runner import run_job

    settings, db = engine
    broker = broker_for(settings)
    media = assets.new_media(source={"type": "upload"})
    with db.write() as session:
        session.add(media)
    ends = tmp_path / "ends.txt"
    waiting = lifecycle.submit(db, broker, kind="tests.hooked", params={"ends": str(ends)}, media_id=media.id)
    deleting = lifecycle.submit(db, broker, kind="media.delete", params={}, media_id=media.id)

    run_job(deleting.id, deleting.attempt)  # the delete job's handler cancels what the asset still has

    assert rows.get_job(db, deleting.id).state == states.SUCCEEDED
    assert rows.get_job(db, waiting.id).state == states.CANCELLED
    assert ends.read_text().splitlines() == [f"{waiting.id} cancelled"]


def test_retry_publishes_the_job_by_itself(engine: tuple[Settings, Database], tmp_path: Path) -> None:
    settings, db = engine
    broker = broker_for(settings)
    job = lifecycle.submit(db, broker, kind="tests.count", params={"path": str(tmp_path / "runs")})
    wait_for(lambda: (job.id, 1) in queued_messages(settings.effective_broker_url), message="the 1st message")
    lifecycle.cancel(db, job.id)
    redis.Redis.from_url(settings.effective_broker_url).flushdb()

    retried = lifecycle.retry(db, broker, job.id)

    assert retried.state == states.QUEUED and retried.attempt == 2
    wait_for(
        lambda: queued_messages(settings.effective_broker_url) == [(job.id, 2)],
        timeout_s=5,
        message="the retried job's message",
    )


def test_enqueue_with_invalid_params_fails_the_parent_at_once(api: httpx.Client) -> None:
    parent = submit(api, "tests.spawn", {"kind": "tests.count", "params": {"seconds": "soon"}})
    done = wait_state(api, parent["id"], "failed", "succeeded")
    assert done["state"] == "failed"
    assert done["error"]["code"] == "invalid_params"
    assert "invalid params for tests.count" in done["error"]["message"]
    assert "path" in done["error"]["message"] and "seconds" in done["error"]["message"]


def test_enqueue_starts_the_follow_up_job(api: httpx.Client, tmp_path: Path) -> None:
    parent = submit(api, "tests.spawn", {"kind": "tests.count", "params": {"path": str(tmp_path / "r")}})
    done = wait_state(api, parent["id"], "failed", "succeeded")
    assert done["state"] == "succeeded", done["error"]
    assert wait_state(api, done["result"], "succeeded", "failed")["state"] == "succeeded"


PUBLISH_WITHOUT_WORKER = """
import sys, time
from mediajobs.broker import broker_for
from mediajobs.config import Settings
from mediajobs.db.migrate import migrate
from mediajobs.db.session import get_db
from mediajobs.jobs import context, outbox, lifecycle, maintenance, reaper, rows
from mediajobs.jobs.registry import load_kinds
from tests.jobs.test_lifecycle import queued_messages

settings = Settings(database_url=sys.argv[1], broker_url=sys.argv[2], data_dir=sys.argv[3])
load_kinds()
db = get_db(settings.effective_database_url)
migrate(db)
job = lifecycle.submit(db, broker_for(settings), kind="test.add", params={"x": 1, "y": 2})
deadline = time.monotonic() + 10
while (job.id, 1) not in queued_messages(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.05)
print("published" if (job.id, 1) in queued_messages(sys.argv[2]) else "not published")
print(sorted(m for m in sys.modules if m.startswith("mediajobs.worker")))
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
