"""One stack for the webhook tests: 127.0.0.2 plays the public receiver, 127.0.0.1 stays internal.

Auth is on (every test sends the key), delivery retries run on a schedule scaled down a thousandfold
through MEDIAJOBS_RETRY_BACKOFF_BASE_S, and the relay runs every 0.1 s.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import database_url
from tests.servers import RedisServer, Stack, base_env, stop_stacks
from tests.webhooks.receiver import Receiver, serve

API_KEY = "webhook-test-key"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with serve("127.0.0.2") as server:
        yield server


@pytest.fixture(scope="session")
def internal() -> Iterator[Receiver]:
    """Stands in for the metadata service or an admin page: nothing may ever reach it."""
    with serve("127.0.0.1") as server:
        yield server


class WebhookStacks:
    """Stacks per database backend, started on first use, sharing one Redis of their own."""

    def __init__(self, tmp: pytest.TempPathFactory, request: pytest.FixtureRequest) -> None:
        self.tmp = tmp
        self.request = request
        self.redis = RedisServer(tmp.mktemp("webhook-redis")).start()
        self.stacks: dict[str, Stack] = {}

    def get(self, backend: str) -> Stack:
        if backend not in self.stacks:
            directory = self.tmp.mktemp(f"webhooks-{backend}")
            values = {
                "MEDIAJOBS_DATABASE_URL": database_url(backend, directory, self.request),
                "MEDIAJOBS_BROKER_URL": self.redis.new_url(),
                "MEDIAJOBS_API_KEYS": API_KEY,
                "MEDIAJOBS_IMPORT_PUBLIC_CIDRS": "127.0.0.2/32",
                "MEDIAJOBS_IMPORT_ALLOWED_PORTS": "*",
                "MEDIAJOBS_RETRY_BACKOFF_BASE_S": "0.002",
                "MEDIAJOBS_MAINTENANCE_INTERVAL_S": "0.1",
                "MEDIAJOBS_HEARTBEAT_INTERVAL_S": "0.5",
                "MEDIAJOBS_TEMP_DIR": str(directory / "tmp"),
            }
            stack = Stack(directory, base_env(**values))
            self.stacks[backend] = stack
            stack.start_api()
            stack.start_worker("io,cpu,default", 3)
        return self.stacks[backend]

    def stop(self) -> None:
        stop_stacks(list(self.stacks.values()))
        self.redis.stop()


@pytest.fixture(scope="session")
def webhook_stacks(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[WebhookStacks]:
    stacks = WebhookStacks(tmp_path_factory, request)
    yield stacks
    stacks.stop()


@pytest.fixture
def stack(webhook_stacks: WebhookStacks) -> Stack:
    """The SQLite stack, for behaviour that does not depend on the database."""
    return webhook_stacks.get("sqlite")


@pytest.fixture(params=BACKENDS)
def any_stack(webhook_stacks: WebhookStacks, request: pytest.FixtureRequest) -> Stack:
    return webhook_stacks.get(request.param)


def client(stack: Stack) -> httpx.Client:
    return stack.client(headers={"Authorization": f"Bearer {API_KEY}"})


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with client(stack) as c:
        yield c
