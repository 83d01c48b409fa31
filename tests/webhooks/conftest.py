"""One stack for the webhook tests: 127.0.0.2 plays the public receiver, 127.0.0.1 stays internal.

Auth is on (every test sends the key), delivery retries run on a schedule scaled down a thousandfold
through MEDIAJOBS_RETRY_BACKOFF_BASE_S, and the relay runs every 0.1 s.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mediajobs.testing.stacks import Stack
from tests.stacks import BACKENDS, StackPool
from tests.webhooks.receiver import Receiver, serve

API_KEY = "webhook-test-key"


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with serve("127.0.0.2") as server:
        yield server


@pytest.fixture(scope="session")
def internal() -> Iterator[Receiver]:
    """Stands in for the metadata service or an admin page: nothing may ever reach it."""
    with serve("127.0.0.1") as server:
        yield server


def webhook_stack(pool: StackPool, backend: str) -> Stack:
    """The webhook tests' stack on one database backend (its own Redis database, like every stack)."""
    return pool.get(
        f"webhooks-{backend}",
        backend=backend,
        concurrency=3,
        api_keys=API_KEY,
        import_public_cidrs="127.0.0.2/32",
        import_allowed_ports="*",
        retry_backoff_base_s="0.002",
        maintenance_interval_s="0.1",
    ).stack


@pytest.fixture
def stack(stack_pool: StackPool) -> Stack:
    """The SQLite stack, for behaviour that does not depend on the database."""
    return webhook_stack(stack_pool, "sqlite")


@pytest.fixture(params=BACKENDS)
def any_stack(stack_pool: StackPool, request: pytest.FixtureRequest) -> Stack:
    return webhook_stack(stack_pool, request.param)


def client(stack: Stack) -> httpx.Client:
    return stack.client(headers={"Authorization": f"Bearer {API_KEY}"})


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with client(stack) as c:
        yield c
