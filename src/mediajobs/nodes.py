"""Nodes: every API and worker process records what it must share with the others, and how its storage fares.

The record (URLs masked: nothing secret) goes to the database and to the broker and is refreshed every few
seconds, so `doctor` on any host sees processes that share its database but not its broker and the other way
round, and `/readyz` can say which workers cannot use the storage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import delete, select, update

from mediajobs.config import Settings, mask_text, mask_url
from mediajobs.db.models import Node, utcnow
from mediajobs.db.session import Database
from mediajobs.errors import MediajobsError
from mediajobs.storage import for_process

log = logging.getLogger(__name__)

API, WORKER = "api", "worker"
BROKER_PREFIX = "mediajobs:node:"
# Job error codes that say this process cannot use the storage at all (not that one object is missing).
STORAGE_PROBLEMS = ("storage_denied", "storage_unavailable")
STORAGE_CHECK_S = 30.0
# A node silent for this many rounds is gone; records a day old are removed.
MISSED_ROUNDS = 3
FORGET_AFTER = timedelta(days=1)

# This worker's node name: set before the pool forks, so the pool children report under it.
_local_name: str | None = None


def interval_s(settings: Settings) -> float:
    return max(1.0, settings.heartbeat_timeout_s / MISSED_ROUNDS)


def api_name(settings: Settings) -> str:
    """An API process's node name, in the shape of a worker's: port.pid@host."""
    return f"{settings.port}.{os.getpid()}@{socket.gethostname()}"


def shared_config(settings: Settings) -> dict[str, str]:
    """What must be the same in every process, as it may be shown (userinfo and secret parameters masked)."""
    storage = mask_url(settings.effective_storage_url)
    if storage.startswith("s3://"):
        storage += f" @ {mask_url(settings.s3_endpoint_url) if settings.s3_endpoint_url else 'AWS'}"
    modules = sorted({m.strip() for m in settings.kind_modules.split(",") if m.strip()})
    return {
        "database": mask_url(settings.effective_database_url),
        "broker": mask_url(settings.effective_broker_url),
        "storage": storage,
        "kind_modules": ",".join(modules) or "(none)",
    }


def storage_error(exc: Exception) -> dict[str, str]:
    code = exc.code if isinstance(exc, MediajobsError) else "storage_error"
    return {"code": code, "message": mask_text(str(exc)), "at": utcnow().isoformat()}


@dataclass
class NodeView:
    """A node as a survey found it: in this host's database, in its broker, or in both."""

    name: str
    role: str
    hostname: str
    pid: int
    config: dict[str, str]
    storage_error: dict[str, Any] | None
    in_database: bool = False
    in_broker: bool = False

    @property
    def label(self) -> str:
        return f"{self.role} {self.name}"


def _alive(row: Node, now: datetime) -> bool:
    return now - row.seen_at <= timedelta(seconds=row.interval_s * MISSED_ROUNDS)


def live_nodes(db: Database) -> list[Node]:
    now = utcnow()
    with db.read() as session:
        rows = session.scalars(select(Node).where(Node.seen_at > now - FORGET_AFTER)).all()
    return [row for row in rows if _alive(row, now)]


def storage_problems(db: Database) -> list[dict[str, Any]]:
    """Live nodes whose storage fails, for /readyz: which node, the stable code, since when."""
    return [
        {
            "node": f"{row.role} {row.name}",
            "code": row.storage_error["code"],
            "since": row.storage_error["at"],
        }
        for row in live_nodes(db)
        if row.storage_error
    ]


def set_worker_name(name: str) -> None:
    """Called by the worker before its pool forks, so that its children report under its name."""
    global _local_name
    _local_name = name


def local_worker_name() -> str | None:
    return _local_name


def report_storage_error(db: Database, exc: Exception) -> None:
    """From a worker's pool child: a job met a storage failure, which the worker's record shows at once."""
    if _local_name is None:
        return
    try:
        with db.write() as session:
            values = {"storage_error": storage_error(exc)}
            session.execute(update(Node).where(Node.name == _local_name).values(**values))
    except Exception as exc2:  # the job's own outcome matters more than this report
        log.warning("could not record the storage failure on node %s: %s", _local_name, exc2)


def survey(db: Database, settings: Settings) -> tuple[list[NodeView], dict[str, str]]:
    """Every live node this host sees in its database and its broker; and the sources it could not read."""
    found: dict[str, NodeView] = {}
    unread: dict[str, str] = {}
    try:
        for row in live_nodes(db):
            found[row.name] = NodeView(
                row.name, row.role, row.hostname, row.pid, row.config, row.storage_error, in_database=True
            )
    except Exception as exc:  # unreachable, or not migrated: the database check says which
        unread["database"] = f"{type(exc).__name__}: {exc}"
    client = redis.Redis.from_url(settings.broker_client_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = list(client.scan_iter(f"{BROKER_PREFIX}*", count=1000))
        for raw in client.mget(keys) if keys else []:
            if raw is None:  # expired between the scan and the read
                continue
            data = json.loads(raw)
            fields = ("name", "role", "hostname", "pid", "config", "storage_error")
            view = found.get(data["name"]) or NodeView(*(data[f] for f in fields))
            view.in_broker = True
            found[view.name] = view
    except redis.RedisError as exc:
        unread["broker"] = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return sorted(found.values(), key=lambda v: (v.role, v.name)), unread


class Recorder:
    """Keeps this process's node record fresh in the database and the broker; removes it when stopped."""

    def __init__(self, db: Database, settings: Settings, *, role: str, name: str) -> None:
        self.db = db
        self.settings = settings
        self.role = role
        self.name = name
        self.interval_s = interval_s(settings)
        self._redis = redis.Redis.from_url(
            settings.broker_client_url, socket_connect_timeout=2, socket_timeout=2
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mediajobs-node", daemon=True)
        self._checking = threading.Lock()
        self._checked_at = float("-inf")
        self._storage: Any = None
        self._storage_error: dict[str, Any] | None = None
        self._failing: set[str] = set()
        self.started_at = utcnow()

    def start(self) -> Recorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception), self.db.write() as session:
            session.execute(delete(Node).where(Node.name == self.name))
        with contextlib.suppress(Exception):
            self._redis.delete(BROKER_PREFIX + self.name)
        self._redis.close()

    def _run(self) -> None:
        self._quietly("database", self._forget_old)
        while True:
            self.beat()
            if self._stop.wait(self.interval_s):
                return

    def beat(self) -> None:
        """Refresh both records; every STORAGE_CHECK_S check the storage too, on a thread of its own."""
        known = self._quietly("database", self._write_row)
        self._quietly("broker", lambda: self._write_key(known))
        # A storage that does not answer takes seconds to fail: the heartbeat must not wait for it.
        due = time.monotonic() - self._checked_at >= STORAGE_CHECK_S
        if due and self._checking.acquire(blocking=False):
            self._checked_at = time.monotonic()
            threading.Thread(target=self._check_storage, name="mediajobs-node-storage", daemon=True).start()

    def _record(self, storage: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "config": shared_config(self.settings),
            "storage_error": storage,
        }

    def _write_row(self) -> dict[str, Any] | None:
        """Insert or refresh the row (never its storage error: the check and the jobs write that)."""
        with self.db.write() as session:
            row = session.get(Node, self.name)
            now = utcnow()
            if row is None:
                data = self._record(None)
                row = Node(**data, interval_s=self.interval_s, started_at=self.started_at, seen_at=now)
                session.add(row)
            else:
                row.seen_at, row.config, row.interval_s = now, shared_config(self.settings), self.interval_s
            return row.storage_error

    def _write_key(self, storage: dict[str, Any] | None) -> None:
        ttl = max(1, round(self.interval_s * MISSED_ROUNDS))
        self._redis.set(BROKER_PREFIX + self.name, json.dumps(self._record(storage)), ex=ttl)

    def _check_storage(self) -> None:
        try:
            try:
                if self._storage is None:
                    self._storage = for_process(self.settings)
                self._storage.check()
                error = None
            except Exception as exc:
                error = storage_error(exc)
            before = self._storage_error
            if error and before and error["code"] == before["code"]:
                error["at"] = before["at"]  # the same failure goes on: "since" stays when it began
            elif error:
                log.warning("node %s: the storage check failed: %s", self.name, error["message"])
            elif before:
                log.info("node %s: the storage check passes again", self.name)
            self._storage_error = error

            def write() -> None:
                with self.db.write() as session:
                    session.execute(update(Node).where(Node.name == self.name).values(storage_error=error))

            self._quietly("database", write)
            self._quietly("broker", lambda: self._write_key(error))
        finally:
            self._checking.release()

    def _forget_old(self) -> None:
        with self.db.write() as session:
            session.execute(delete(Node).where(Node.seen_at < utcnow() - FORGET_AFTER))

    def _quietly(self, part: str, call: Any) -> Any:
        """`call()`; an outage of `part` is logged once (when it starts and when it ends), never raised."""
        try:
            result = call()
        except Exception as exc:
            if part not in self._failing:
                log.warning("node %s: cannot update its record in the %s: %s", self.name, part, exc)
                self._failing.add(part)
            return None
        if part in self._failing:
            log.info("node %s: its record in the %s is up to date again", self.name, part)
            self._failing.discard(part)
        return result
