"""Engines and sessions. SQLite runs in WAL mode, and its write transactions take the write lock up front.

Connections recover by themselves: PostgreSQL's are pinged on checkout and a disconnect invalidates the pool.
`is_unreachable` tells an outage (server down or restarting, SQLite's file gone) from a failing statement.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")
# SQLSTATE classes and codes that say the server is not there, rather than that a statement is wrong:
# 08 connection exception, 57P01-57P03 admin/crash shutdown and "the database system is starting up".
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
# How SQLite says its file cannot be used at all (a vanished volume, a lock held past busy_timeout).
_SQLITE_UNREACHABLE = ("unable to open database file", "disk i/o error", "database is locked")
# libpq: give up connecting after 5 s, and notice a vanished server within about 25 s instead of hours.
_PG_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def _unreachable_dbapi(error: BaseException | None) -> bool:
    if isinstance(error, psycopg.InterfaceError):  # the connection object is closed or broken
        return True
    if isinstance(error, psycopg.OperationalError):
        # No SQLSTATE: the client could not connect or lost the connection; the server never answered.
        return error.sqlstate is None or error.sqlstate.startswith(_UNREACHABLE_SQLSTATES)
    if isinstance(error, sqlite3.OperationalError):
        return any(words in str(error).lower() for words in _SQLITE_UNREACHABLE)
    return False


def is_unreachable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached now (worth waiting for), not a bad statement."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free within pool_timeout
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return error.connection_invalidated or _unreachable_dbapi(error.orig)
    return _unreachable_dbapi(error)


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the user gave."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_engine(url: str, begin: str) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=20)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (the driver's implicit BEGIN is always DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when another
        # process wrote in between; IMMEDIATE waits for the lock (busy_timeout) instead.
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """The database of record: `write()` for transactions that change rows, `read()` for queries."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(self.url, "BEGIN IMMEDIATE")
            self.read_engine = _sqlite_engine(self.url, "BEGIN")
        else:
            self.write_engine = create_engine(
                self.url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                connect_args=dict(_PG_CONNECT_ARGS),
            )
            self.read_engine = self.write_engine
        # When this process last failed to reach the database (monotonic; -inf: never).
        self.unreachable_at = float("-inf")
        for engine in {self.write_engine, self.read_engine}:
            event.listen(engine, "handle_error", self._on_error)
        self._writer = sessionmaker(bind=self.write_engine, expire_on_commit=False)
        self._thread_lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        self._lock_pid = 0
        db_path = self.url.split("///", 1)[1] if self.is_sqlite and "///" in self.url else ""
        self._lock_path = f"{db_path}.writelock" if db_path and db_path != ":memory:" else None
        self._reader = sessionmaker(bind=self.read_engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._sqlite_writer_lock(), self._writer.begin() as session:
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in a write transaction, for hot paths where a Session's bookkeeping shows."""
        with self._sqlite_writer_lock(), self.write_engine.begin() as conn:
            yield conn

    @contextmanager
    def _sqlite_writer_lock(self) -> Iterator[None]:
        # SQLite has one writer at a time. Writers queue on a thread lock and an flock on a file beside the
        # database, which wake the next writer at once, rather than in SQLite's busy handler, which polls
        # in growing sleeps of up to 100 ms and made submit latency under load seconds instead of ms.
        if self._lock_path is None:
            yield
            return
        with self._thread_lock:
            if self._lock_file is None or self._lock_pid != os.getpid():
                self._lock_file = open(self._lock_path, "a+b")  # noqa: SIM115 - kept for the process' life
                self._lock_pid = os.getpid()
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    def _on_error(self, context: Any) -> None:
        # Also called for failed connects (context.connection is None then), which is most of an outage.
        if context.is_disconnect or _unreachable_dbapi(context.original_exception):
            self.unreachable_at = time.monotonic()

    def reachable_for_s(self) -> float:
        """Seconds since this process last failed to reach the database (inf when it never did)."""
        return time.monotonic() - self.unreachable_at

    def ping(self) -> None:
        with self.read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


def ride_through(call: Callable[[], T], *, grace_s: float, what: str) -> T:
    """`call()`, retried while the database is unreachable for up to `grace_s`; other errors raise at once.

    The wait between tries stays short (at most 1 s), so the call goes through soon after the database is up.
    """
    deadline = time.monotonic() + grace_s
    delay = 0.1
    failed = False
    while True:
        try:
            result = call()
        except Exception as exc:
            if not is_unreachable(exc) or time.monotonic() + delay > deadline:
                raise
            if not failed:
                log.warning("database unreachable (%s); retrying %s for up to %g s", exc, what, grace_s)
                failed = True
            time.sleep(delay)
            delay = min(1.0, delay * 2)
            continue
        if failed:
            log.info("database reachable again; %s done", what)
        return result


_lock = threading.Lock()
_databases: dict[tuple[int, str], Database] = {}


def get_db(url: str) -> Database:
    """One Database per process and URL; a forked worker child gets its own connections."""
    key = (os.getpid(), url)
    with _lock:
        db = _databases.get(key)
        if db is None:
            db = _databases[key] = Database(url)
        return db
