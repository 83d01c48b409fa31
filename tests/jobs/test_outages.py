"""Database outages: the API answers 503 with Retry-After; every accepted job rides through on attempt 1."""

from __future__ import annotations

import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from mediajobs import bootstrap
from mediajobs.api.app import create_app
from mediajobs.broker import TASK_NAME
from mediajobs.config import Settings
from mediajobs.db.migrate import migrate
from mediajobs.db.session import get_db
from mediajobs.testing.servers import PostgresServer, wait_for
from tests.conftest import MakeStack, submit, wait_state

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette 1.x warns that its TestClient will move to `httpx2`
    from starlette.testclient import TestClient

OUTAGE_S = 5.0
JOB = {"kind": "test.add", "params": {"x": 1, "y": 2}}


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A cluster of this test's own, stopped and started again on the same port."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


def at(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert "database" in response.json()["detail"]


class Submitter(threading.Thread):
    """POSTs a job every 0.2 s until stopped, remembering every answer."""

    def __init__(self, api_url: str) -> None:
        super().__init__(daemon=True)
        self.api_url = api_url
        self.stop = threading.Event()
        self.accepted: list[str] = []
        self.answers: list[httpx.Response] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=10) as client:
            while not self.stop.wait(0.2):
                try:
                    response = client.post("/api/v1/jobs", json=JOB)
                except httpx.TransportError:  # the API itself went away: the test has failed already
                    return
                self.answers.append(response)
                if response.status_code == 202:
                    self.accepted.append(response.json()["id"])


def test_postgres_outage_answers_503_and_every_job_rides_through_on_attempt_1(
    make_stack: MakeStack, postgres: PostgresServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = postgres.create_database("outage")
    # A heartbeat timeout shorter than the outage: a reaper that counted the outage would re-queue the job.
    stack = make_stack(workers=0, database_url=url, heartbeat_timeout_s="3")
    stack.start_worker("default", 3)
    submitter = Submitter(stack.api_url)
    with stack.client() as api:
        across = submit(api, "test.sleep", {"seconds": 8})  # runs through the whole outage
        ends_inside = submit(api, "test.sleep", {"seconds": 2.5})  # its outcome is written after it
        # Queued where no worker reads; its message goes to a worker while the database is down (below).
        claimed_inside = submit(api, "tests.subprocess", {"seconds": 0.1, "pidfile": str(tmp_path / "pid")})
        wait_state(api, across["id"], "running")
        wait_state(api, ends_inside["id"], "running")
        submitter.start()
        request.addfinalizer(submitter.stop.set)
        wait_for(lambda: submitter.accepted, message="a job accepted before the outage")

        postgres.halt()
        down_at = time.monotonic()
        assert_unavailable(api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 1}}))
        assert_unavailable(api.get(f"/api/v1/jobs/{across['id']}"))
        ready = api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["failing"] == ["database"]
        celery = bootstrap.broker(
            Settings(broker_url=stack.env["MEDIAJOBS_BROKER_URL"], kind_modules="tests.kinds")
        ).celery
        celery.send_task(TASK_NAME, args=[claimed_inside["id"], 1], queue="default", retry=False)
        celery.close()
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        postgres.resume()
        back_at = time.time()

        accepted_before = len(submitter.accepted)
        wait_for(lambda: len(submitter.accepted) > accepted_before + 1, message="POSTs accepted again")
        submitter.stop.set()
        submitter.join()
        statuses = {r.status_code for r in submitter.answers}
        assert statuses == {202, 503}, statuses
        for response in submitter.answers:
            if response.status_code == 503:
                assert_unavailable(response)
        for job_id in [across["id"], ends_inside["id"], claimed_inside["id"], *submitter.accepted]:
            done = wait_state(api, job_id, "succeeded", "failed", timeout_s=20)
            assert done["state"] == "succeeded", done
            assert done["attempt"] == 1, done
            assert at(done["finished_at"]) - back_at < 10.0, done


def test_sqlite_file_out_of_reach_answers_503_and_recovers_by_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = Settings(data_dir=data, port=8000, broker_url="redis://127.0.0.1:1/0")
    migrate(get_db(config.effective_database_url))
    with TestClient(create_app(config, maintenance=False), base_url="http://localhost:8000") as client:
        job = {"kind": "test.add", "params": {"x": 1, "y": 2}}
        assert client.post("/api/v1/jobs", json=job).status_code == 202
        db = get_db(config.effective_database_url)
        db.dispose()
        moved = tmp_path / "unmounted"
        shutil.move(data, moved)  # as a volume that went away: no new connection can open the file
        try:
            assert_unavailable(client.post("/api/v1/jobs", json=job))
            assert_unavailable(client.get("/api/v1/jobs"))
        finally:
            shutil.move(moved, data)
        assert client.post("/api/v1/jobs", json=job).status_code == 202
        assert len(client.get("/api/v1/jobs").json()["items"]) == 2
