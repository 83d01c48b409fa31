"""Stacks for the media API tests: an API + worker per storage backend, and what their storage holds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from mediajobs.storage.backends.local import CHECK_PREFIX
from mediajobs.storage.backends.s3 import CHECK_KEY
from tests.servers import RedisServer, Stack, base_env, stop_stacks, wait_for
from tests.storage.moto_server import AWS_ENV, CREDENTIALS, create_bucket

STORAGES = ["file", "s3"]
S3_PREFIX = "deploy/one"


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
        self._s3: Any = boto3.client("s3", endpoint_url=endpoint_url, **CREDENTIALS) if bucket else None

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
    """A running API + worker, the storage they share, and where their temp files go."""

    name: str
    storage: str
    stack: Stack
    stored: Stored
    cache: dict[str, Any] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.api_url, timeout=30)

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
    """Stacks started on first use and stopped at the end of the session; each has its own Redis database."""

    def __init__(self, tmp: pytest.TempPathFactory, request: pytest.FixtureRequest) -> None:
        self.tmp = tmp
        self.request = request
        self.stacks: dict[str, MediaStack] = {}
        self.redis: RedisServer | None = None

    def get(
        self, name: str, storage: str = "file", *, workers: int = 1, concurrency: int = 2, **env: str
    ) -> MediaStack:
        if name not in self.stacks:
            self.stacks[name] = self._start(name, storage, workers, concurrency, env)
        return self.stacks[name]

    def _start(
        self, name: str, storage: str, workers: int, concurrency: int, env: dict[str, str]
    ) -> MediaStack:
        if self.redis is None:
            self.redis = RedisServer(self.tmp.mktemp("media-redis")).start()
        directory = self.tmp.mktemp(f"media-{name}")
        values = {
            "MEDIAJOBS_DATABASE_URL": f"sqlite:///{directory / 'mediajobs.db'}",
            "MEDIAJOBS_BROKER_URL": self.redis.new_url(),
            "MEDIAJOBS_KIND_MODULES": "tests.kinds",
            "MEDIAJOBS_HEARTBEAT_INTERVAL_S": "0.5",
            "MEDIAJOBS_HEARTBEAT_TIMEOUT_S": "3",
            # Stopping a stack waits at most this long for jobs to hand back.
            "MEDIAJOBS_SHUTDOWN_GRACE_S": "1",
            "MEDIAJOBS_RETRY_BACKOFF_BASE_S": "0.5",
            "MEDIAJOBS_TEMP_DIR": str(directory / "tmp"),
            **{f"MEDIAJOBS_{k.upper()}": v for k, v in env.items()},
        }
        if storage == "file":
            root = directory / "storage"
            root.mkdir()
            values["MEDIAJOBS_STORAGE_URL"] = f"file://{root}"
            stored = Stored(root=root)
        else:
            endpoint: str = self.request.getfixturevalue("moto_endpoint")
            bucket = create_bucket(endpoint)
            values["MEDIAJOBS_STORAGE_URL"] = f"s3://{bucket}/{S3_PREFIX}"
            values["MEDIAJOBS_S3_ENDPOINT_URL"] = endpoint
            values.update(AWS_ENV)
            stored = Stored(bucket=bucket, endpoint_url=endpoint, prefix=S3_PREFIX)
        stack_env = base_env(**values)
        for variable in ("PROFILE", "SESSION_TOKEN", "CONFIG_FILE", "SHARED_CREDENTIALS_FILE"):
            stack_env.pop(f"AWS_{variable}", None)
        stack = Stack(directory, stack_env)
        media_stack = MediaStack(name, storage, stack, stored)
        try:
            stack.start_api()
            for _ in range(workers):
                stack.start_worker("io,cpu,default", concurrency)
        except BaseException:
            stack.stop()
            raise
        return media_stack

    def stop(self) -> None:
        stop_stacks([media_stack.stack for media_stack in self.stacks.values()])
        if self.redis is not None:
            self.redis.stop()


def main_stack(pool: StackPool, storage: str) -> MediaStack:
    """The shared stack of one storage backend.

    Imports from 127.0.0.1 are allowed (the test HTTP server), and superseded HLS versions are removed
    one second after a reprocess swaps them out instead of after the default grace period.
    """
    return pool.get(f"main-{storage}", storage, import_allow_private="true", hls_swap_grace_s="1")


LIMIT_BYTES = 1_500_000  # over one 1 MiB buffer: a too-large upload has begun writing when it is refused


def limited_file_stack(pool: StackPool) -> MediaStack:
    """A stack on local storage whose MEDIAJOBS_MAX_UPLOAD_BYTES is LIMIT_BYTES."""
    return pool.get("limited-file", "file", max_upload_bytes=str(LIMIT_BYTES), import_allow_private="true")
