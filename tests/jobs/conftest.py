"""The jobs engine in this process: a migrated SQLite of the test's own, and a broker that records messages.

`StubBroker` stands in for our own `Broker` interface (`publish(message)`), not for Redis: what it receives is
what a worker would be sent. `Engine.work` is a worker that takes those messages one at a time and runs them
with the real runner, in this process. The real Redis and worker processes are tested elsewhere.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from mediajobs import bootstrap
from mediajobs.broker import Message
from mediajobs.config import Settings
from mediajobs.db.migrate import migrate
from mediajobs.db.models import Job, utcnow
from mediajobs.db.session import Database
from mediajobs.jobs import lifecycle, outbox, rows
from mediajobs.jobs.hooks import Services
from mediajobs.worker import runner
from tests import fanout_kinds, kinds

KIND_MODULES = (bootstrap, kinds, fanout_kinds)  # imported for the kinds they register


class BrokerDown(ConnectionError):
    """What the stub raises while it refuses messages, as a broker that cannot be reached does."""


class StubBroker:
    """Records every published message, in order; refuses them all while `refusing` is set."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refusing = False
        self._taken = 0
        self._changed = threading.Condition()

    def publish(self, message: Message) -> None:
        with self._changed:
            if self.refusing:
                raise BrokerDown("the broker does not answer")
            self.messages.append(message)
            self._changed.notify_all()

    def sent(self, job_id: str) -> list[int]:
        """The attempts of this job that were published, in order."""
        with self._changed:
            return [m.attempt for m in self.messages if m.job_id == job_id]

    def wait_sent(self, job_id: str, attempt: int, timeout_s: float = 5.0) -> Message:
        """The message of this attempt, once the background publisher has sent it."""
        with self._changed:
            self._changed.wait_for(lambda: self._find(job_id, attempt) is not None, timeout=timeout_s)
            found = self._find(job_id, attempt)
        assert found is not None, f"job {job_id} attempt {attempt} was not published within {timeout_s} s"
        return found

    def pending(self) -> int:
        """How many messages no worker took yet."""
        with self._changed:
            return len(self.messages) - self._taken

    def take(self, timeout_s: float) -> Message | None:
        """The oldest message no worker took yet, waiting up to `timeout_s` for one."""
        with self._changed:
            self._changed.wait_for(lambda: self._taken < len(self.messages), timeout=timeout_s)
            if self._taken == len(self.messages):
                return None
            self._taken += 1
            return self.messages[self._taken - 1]

    def _find(self, job_id: str, attempt: int) -> Message | None:
        return next((m for m in self.messages if m.job_id == job_id and m.attempt == attempt), None)


class Engine:
    """Services on a SQLite of the test's own (or a migrated `database_url`) and a StubBroker, and a worker
    that runs in this process."""

    def __init__(self, directory: Path, template: Path, database_url: str | None = None) -> None:
        if database_url is None:
            shutil.copyfile(template, directory / "jobs.db")
        self.settings = Settings(
            data_dir=directory / "data",
            database_url=database_url or f"sqlite:///{directory / 'jobs.db'}",
            broker_url="redis://127.0.0.1:1/0",  # never used: the stub carries the messages
            temp_dir=directory / "tmp",
            heartbeat_interval_s=0.2,
            cancel_poll_interval_s=0.05,
            retry_backoff_base_s=0.01,
            max_children=20,
        )
        self.db = Database(self.settings.effective_database_url)
        self.broker = StubBroker()
        self.services = Services(db=self.db, settings=self.settings, broker=self.broker)  # type: ignore[arg-type]

    def submit(self, kind: str, params: dict[str, Any] | None = None, **extra: Any) -> Job:
        return lifecycle.submit(self.services, kind=kind, params=params or {}, **extra)

    def job(self, job_id: str) -> Job:
        return rows.get_job(self.db, job_id)

    def children(self, parent_id: str) -> list[Job]:
        """The parent's children in the order it gave them (the API lists newest first)."""
        children = rows.list_jobs(self.db, parent_id=parent_id, limit=500).items
        return sorted(children, key=lambda job: job.created_at)

    def work(self, until: Callable[[], bool], *, relay: bool = False, timeout_s: float = 20.0) -> None:
        """Run the published messages here, one at a time and in order, until `until()` holds.

        With `relay`, whenever no message waits, retries whose backoff has passed are released and the outbox
        relay runs, as the maintenance loop does.
        """
        deadline = time.monotonic() + timeout_s
        while not until():
            assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s working"
            message = self.broker.take(timeout_s=0.05)
            if message is not None:
                runner.run(self.services, message.job_id, message.attempt)
            elif relay:  # as the maintenance loop does
                lifecycle.release_retries(self.services)
                outbox.relay(self.db, self.broker, republish_after_s=self.settings.republish_after_s)  # type: ignore[arg-type]

    def run_to_end(self, job_id: str, *, relay: bool = False, timeout_s: float = 20.0) -> Job:
        """Work until the job has ended; the job as it ended."""
        ended = ("succeeded", "failed", "cancelled")
        self.work(lambda: self.job(job_id).state in ended, relay=relay, timeout_s=timeout_s)
        return self.job(job_id)

    def age_heartbeat(self, job_id: str, seconds: float) -> None:
        """Make the job's last heartbeat `seconds` old, as a worker that went silent leaves it."""
        with self.db.write() as session:
            session.execute(
                update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
            )

    def close(self) -> None:
        self.db.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the newest schema, copied by each test (migrating each would take longer)."""
    path = tmp_path_factory.mktemp("template") / "jobs.db"
    db = Database(f"sqlite:///{path}")
    migrate(db)
    db.dispose()
    return path


@pytest.fixture
def engine(tmp_path: Path, migrated_template: Path) -> Iterator[Engine]:
    made = Engine(tmp_path, migrated_template)
    yield made
    made.close()
