"""The suite's shared stacks: one pool per test process, each stack made on first use under a name.

A stack of the pool runs an API and workers on a database (SQLite or PostgreSQL) and a storage (a local
directory or a bucket of the S3 server) of its own, on a Redis database no other stack uses; tests isolate
themselves by what they create. `Stored` reads what a stack's storage holds, bypassing mediajobs.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediajobs.storage.backends.local import CHECK_PREFIX
from mediajobs.storage.backends.s3 import CHECK_KEY
from mediajobs.testing.s3 import client, create_bucket, with_test_credentials
from mediajobs.testing.servers import PostgresServer, RedisServer, http_client, wait_for
from mediajobs.testing.stacks import Stack, Workers, stack_env, stop_stacks

# The kinds every stack of the suite loads besides the built-in ones.
KINDS = "tests.kinds"
BACKENDS = ["sqlite", "postgresql"]
STORAGES = ["file", "s3"]
S3_PREFIX = "deploy/one"
# A pool's stack unasked for this long is stopped. An idle stack's API and worker each wake every second
# (maintenance, node record): on an otherwise quiet machine of this VM kind a wake-up's work costs about 14
# times what it does back to back (20,000 dict inserts: 3.5 ms, or 48.7 ms after a 1 s sleep), 0.11 CPU-s a
# second for an idle API and 0.07 for its worker; on a machine kept busy (a run) the same work after a sleep
# costs 3.6 ms. A start costs seconds of CPU and of waiting; a run stopping them after 30 s was no faster.
IDLE_S = float(os.environ.get("MJ_TEST_POOL_IDLE_S", "120"))


def database_url(backend: str, directory: Path, request: pytest.FixtureRequest) -> str:
    """A new database: a SQLite file in `directory`, or a database on the session's PostgreSQL cluster."""
    if backend == "sqlite":
        return f"sqlite:///{directory / 'mediajobs.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"mj_{uuid.uuid4().hex[:12]}")


class Stored:
    """What a stack's storage holds, read directly (os.walk, or S3 over HTTP), keys relative to its root.

    Local temp files and unfinished S3 multipart uploads count: "nothing stored" means nothing at all.
    """

    def __init__(
        self,
        *,
        root: Path | None = None,
        bucket: str | None = None,
        endpoint_url: str | None = None,
        prefix: str = "",
    ) -> None:
        self.root = root
        self.bucket = bucket
        self.prefix = prefix
        self._s3: Any = client(endpoint_url) if bucket and endpoint_url else None

    def keys(self, under: str = "") -> list[str]:
        # Not stored content: the storage check (readyz, doctor) writes and deletes a probe.
        if self.root is not None:
            base = self.root / under if under else self.root
            paths = (Path(d) / f for d, _, files in os.walk(base) for f in files)
            return sorted(
                p.relative_to(self.root).as_posix() for p in paths if not p.name.startswith(CHECK_PREFIX)
            )
        full = f"{self.prefix}/{under}" if self.prefix else under
        strip = len(f"{self.prefix}/") if self.prefix else 0
        probe = f"{self.prefix}/{CHECK_KEY}" if self.prefix else CHECK_KEY
        found = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            found += [obj["Key"][strip:] for obj in page.get("Contents", []) if obj["Key"] != probe]
        uploads = self._s3.list_multipart_uploads(Bucket=self.bucket, Prefix=full).get("Uploads", [])
        found += [f"{u['Key'][strip:]} (unfinished multipart upload)" for u in uploads]
        return sorted(found)


@dataclass
class MediaStack:
    """A running API + workers, the storage they share, and where their temp files go."""

    name: str
    storage: str
    stack: Stack
    stored: Stored
    cache: dict[str, Any] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return http_client(base_url=self.stack.api_url, timeout=30)

    @property
    def temp_dir(self) -> Path:
        return Path(self.stack.env["MEDIAJOBS_TEMP_DIR"])

    def temp_leftovers(self) -> list[str]:
        if not self.temp_dir.exists():
            return []
        return sorted(str(p.relative_to(self.temp_dir)) for p in self.temp_dir.rglob("*"))

    def assert_temp_empty(self, timeout_s: float = 10) -> None:
        """Jobs clean their temp dirs as they end; give the worker a moment after the state change."""
        try:
            wait_for(
                lambda: not self.temp_leftovers(),
                timeout_s=timeout_s,
                message="the worker temp dir to be empty",
            )
        except AssertionError:
            raise AssertionError(f"left in {self.temp_dir}: {self.temp_leftovers()[:20]}") from None

    def logs(self, tail_chars: int = 4000) -> str:
        parts = []
        for path in sorted(self.stack.directory.glob("*.log")):
            parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-tail_chars:]}")
        return "\n".join(parts)


class StackPool:
    """The test process's stacks, each started on first use and stopped side by side at the end.

    A stack no test file has asked for in the last `idle_s` is stopped when a file ends (`file_ended`), and
    made afresh if one asks again: an idle stack's API and worker keep polling their database and broker,
    and a test process would otherwise keep every stack it ever started to the end of the run. Only fixtures
    of a file's scope or narrower hold a stack of the pool.
    """

    def __init__(
        self,
        tmp: pytest.TempPathFactory,
        request: pytest.FixtureRequest,
        redis: RedisServer,
        *,
        idle_s: float = IDLE_S,
    ) -> None:
        self.tmp = tmp
        self.request = request
        self.redis = redis
        self.idle_s = idle_s
        self.stacks: dict[str, MediaStack] = {}
        self._asked: set[str] = set()  # since the last file ended
        self._last_used: dict[str, float] = {}

    def get(
        self,
        name: str,
        storage: str = "file",
        *,
        backend: str = "sqlite",
        workers: int | Workers = 1,
        concurrency: int = 2,
        **env: str,
    ) -> MediaStack:
        """The stack `name`, made on first use: `workers` of `concurrency` slots on every queue (or the
        (queues, slots) of each worker), `env` as MEDIAJOBS_ settings by name (`hls_swap_grace_s="1"`)."""
        if name not in self.stacks:
            layout = [("io,cpu,default", concurrency)] * workers if isinstance(workers, int) else workers
            self.stacks[name] = self._start(name, storage, backend, layout, env)
        self._asked.add(name)
        return self.stacks[name]

    def file_ended(self, now: float | None = None) -> list[str]:
        """A test file's tests and fixtures are done: stop the stacks left idle; their names."""
        now = time.monotonic() if now is None else now
        for name in self._asked:
            self._last_used[name] = now
        self._asked = set()
        idle = [name for name in self.stacks if now - self._last_used.get(name, now) >= self.idle_s]
        if idle:
            self.stop(*idle)
        return idle

    def _start(
        self, name: str, storage: str, backend: str, workers: Sequence[tuple[str, int]], env: dict[str, str]
    ) -> MediaStack:
        directory = self.tmp.mktemp(f"stack-{name}")
        settings = {"kind_modules": KINDS, **env}
        database = settings.pop("database_url", None) or database_url(backend, directory, self.request)
        if storage == "file":
            root = directory / "storage"
            root.mkdir()
            settings["storage_url"] = f"file://{root}"
            stored = Stored(root=root)
        else:
            endpoint: str = self.request.getfixturevalue("moto_endpoint")
            bucket = create_bucket(endpoint)
            settings["storage_url"] = f"s3://{bucket}/{S3_PREFIX}"
            settings["s3_endpoint_url"] = endpoint
            stored = Stored(bucket=bucket, endpoint_url=endpoint, prefix=S3_PREFIX)
        values = stack_env(
            directory,
            broker_url=self.redis.new_url(),
            database_url=database,
            **settings,
        )
        if storage == "s3":
            values = with_test_credentials(values)
        return MediaStack(name, storage, Stack(directory, values).start(workers), stored)

    def stop(self, *names: str) -> None:
        """Stop the named stacks (every one without names); a later `get` makes a fresh one."""
        chosen = [name for name in self.stacks if not names or name in names]
        stop_stacks([self.stacks.pop(name).stack for name in chosen])
