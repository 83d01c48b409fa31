from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediajobs.testing.files import Served, serve_directory
from tests.clips import MakeClip, generate_clip
from tests.servers import PostgresServer, RedisServer, Stack, base_env, stop_stacks, wait_for

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


def database_url(backend: str, directory: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{directory / 'mediajobs.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"mj_{uuid.uuid4().hex[:12]}")


MakeStack = Callable[..., Stack]


@pytest.fixture
def make_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, request: pytest.FixtureRequest
) -> Iterator[MakeStack]:
    """Factory: a fresh API (+ workers) on its own database; everything is stopped afterwards."""
    stacks: list[Stack] = []

    def make(
        backend: str = "sqlite",
        *,
        workers: int = 1,
        queues: str = "io,cpu,default",
        concurrency: int = 2,
        broker_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        **env: str,
    ) -> Stack:
        directory = tmp_path_factory.mktemp("stack")
        values = {
            "MEDIAJOBS_DATABASE_URL": database_url(backend, directory, request),
            "MEDIAJOBS_BROKER_URL": broker_url or redis_server.new_url(),
            "MEDIAJOBS_KIND_MODULES": "tests.kinds",
            "MEDIAJOBS_HEARTBEAT_INTERVAL_S": "0.5",
            "MEDIAJOBS_HEARTBEAT_TIMEOUT_S": "3",
            # Stopping a stack waits at most this long for jobs to hand back.
            "MEDIAJOBS_SHUTDOWN_GRACE_S": "1",
            "MEDIAJOBS_RETRY_BACKOFF_BASE_S": "0.5",
            "MEDIAJOBS_TEMP_DIR": str(directory / "tmp"),
            **{f"MEDIAJOBS_{k.upper()}": v for k, v in env.items()},
            **(extra_env or {}),
        }
        stack = Stack(directory, base_env(**values))
        stacks.append(stack)
        stack.start_api()
        for _ in range(workers):
            stack.start_worker(queues, concurrency)
        return stack

    yield make
    stop_stacks(stacks)


@pytest.fixture(scope="session")
def _shared_stacks(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, request: pytest.FixtureRequest
) -> Iterator[dict[str, Stack]]:
    stacks: dict[str, Stack] = {}
    yield stacks
    stop_stacks(list(stacks.values()))


@pytest.fixture(params=BACKENDS)
def stack(
    request: pytest.FixtureRequest,
    _shared_stacks: dict[str, Stack],
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Stack:
    """A running API + worker shared by the tests of one database backend."""
    backend: str = request.param
    if backend not in _shared_stacks:
        directory = tmp_path_factory.mktemp(f"shared-{backend}")
        values = {
            "MEDIAJOBS_DATABASE_URL": database_url(backend, directory, request),
            "MEDIAJOBS_BROKER_URL": redis_server.new_url(),
            "MEDIAJOBS_KIND_MODULES": "tests.kinds",
            "MEDIAJOBS_HEARTBEAT_INTERVAL_S": "0.5",
            "MEDIAJOBS_HEARTBEAT_TIMEOUT_S": "3",
            # Stopping a stack waits at most this long for jobs to hand back.
            "MEDIAJOBS_SHUTDOWN_GRACE_S": "1",
            "MEDIAJOBS_RETRY_BACKOFF_BASE_S": "0.3",
            "MEDIAJOBS_TEMP_DIR": str(directory / "tmp"),
        }
        shared = Stack(directory, base_env(**values))
        _shared_stacks[backend] = shared
        shared.start_api()
        shared.start_worker("io,default", 3)
        shared.start_worker("cpu", 1)
    return _shared_stacks[backend]


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def submit(
    client: httpx.Client, kind: str, params: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json={"kind": kind, "params": params or {}, **extra})
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_state(client: httpx.Client, job_id: str, *states: str, timeout_s: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        return job if job["state"] in states else None

    return wait_for(
        check,
        timeout_s=timeout_s,
        message=f"job {job_id} to be {'/'.join(states)}",
    )


@pytest.fixture
def make_clip(tmp_path: Path) -> MakeClip:
    """Factory fixture: generate_clip into tmp_path, a fresh name each call unless `name` is given."""
    counter = iter(range(1_000_000))

    def make(*, name: str | None = None, video: bool = True, **options: Any) -> Path:
        out = tmp_path / (name or f"clip{next(counter)}.{'mp4' if video else 'm4a'}")
        return generate_clip(out, video=video, **options)

    return make


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A threaded HTTP server on an ephemeral port serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_directory(root) as server:
        yield server
