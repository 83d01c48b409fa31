from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediajobs.testing.files import Served, serve_directory
from mediajobs.testing.s3 import start_moto_server
from mediajobs.testing.servers import PostgresServer, RedisServer, wait_for
from mediajobs.testing.stacks import Stack, stack_env, stop_stacks
from tests.clips import MakeClip, generate_clip
from tests.stacks import BACKENDS, KINDS, StackPool, database_url

__all__ = ["BACKENDS", "database_url"]

POOL = pytest.StashKey[StackPool]()
DURATIONS = Path(__file__).with_name("durations.json")  # scripts/test-durations.py writes it


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first. pytest-xdist hands a free worker the next module in this order; by default it
    sorts them by their number of tests, and the slowest modules (a few long tests each) ran last, side by
    side, at the end of a run. A module not in the file yet counts as a middling one."""
    seconds: dict[str, float] = json.loads(DURATIONS.read_text())
    middling = statistics.median(seconds.values())
    # A stable sort: the tests of a module keep their order.
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::", 1)[0], middling))


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


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One S3 server (moto) for the whole session; tests isolate themselves with their own buckets."""
    endpoint, stop = start_moto_server()
    yield endpoint
    stop()


@pytest.fixture(scope="session")
def stack_pool(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, redis_server: RedisServer
) -> Iterator[StackPool]:
    """The stacks this test process shares between tests, by name (tests/stacks.py)."""
    pool = StackPool(tmp_path_factory, request, redis_server)
    request.config.stash[POOL] = pool
    yield pool
    del request.config.stash[POOL]
    pool.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last test of a file, and its file's fixtures, are done: the pool stops its idle stacks."""
    yield
    pool = item.config.stash.get(POOL, None)
    if pool is not None and nextitem is not None and nextitem.path != item.path:
        pool.file_ended()


MakeStack = Callable[..., Stack]


@pytest.fixture
def make_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, request: pytest.FixtureRequest
) -> Iterator[MakeStack]:
    """Factory: a fresh API (+ workers) on its own database, for a test that may break it; stopped after."""
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
        values = stack_env(
            directory,
            broker_url=broker_url or redis_server.new_url(),
            database_url=env.pop("database_url", None) or database_url(backend, directory, request),
            **{"kind_modules": KINDS, **env},
        )
        stack = Stack(directory, {**values, **(extra_env or {})})
        stacks.append(stack)
        return stack.start([(queues, concurrency)] * workers)

    yield make
    stop_stacks(stacks)


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, stack_pool: StackPool) -> Stack:
    """A running API and workers shared by the tests of one database backend."""
    backend: str = request.param
    workers = [("io,default", 3), ("cpu", 1)]
    return stack_pool.get(f"shared-{backend}", backend=backend, workers=workers).stack


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
