"""In-process apps (Starlette's TestClient) for what lives in the app: the gate every request passes."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient will move to `httpx2`; the httpx one works as it is.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from mediajobs.api.app import create_app
from mediajobs.config import Settings
from mediajobs.db.migrate import migrate
from mediajobs.db.session import get_db

KEY = "api-test-key"
ORIGIN = "http://localhost:8000"

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    """TestClients on a migrated SQLite database; the Host header is `localhost:8000` (not `testserver`)."""
    clients: list[TestClient] = []

    def make(**settings: object) -> TestClient:
        data = tmp_path / f"data{len(clients)}"
        # No broker answers on port 1: jobs stay queued in the outbox, no one's Redis gets them.
        values: dict[str, object] = {"data_dir": data, "port": 8000, "broker_url": "redis://127.0.0.1:1/0"}
        config = Settings(**{**values, **settings})  # type: ignore[arg-type]
        migrate(get_db(config.effective_database_url))
        client = TestClient(create_app(config, maintenance=False), base_url=ORIGIN)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def open_client(make_client: MakeClient) -> TestClient:
    """No API keys: the loopback default."""
    return make_client()


@pytest.fixture
def keyed_client(make_client: MakeClient) -> TestClient:
    return make_client(api_keys=f"{KEY},second-key")
