"""Probes, metrics and docs: nothing secret in them, nothing fetched from elsewhere, no write per probe."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from mediajobs.api.routes import health
from mediajobs.testing.servers import free_port, wait_for
from tests.api.conftest import KEY, MakeClient, TestClient


def test_readyz_names_the_failing_part_and_nothing_else(make_client: MakeClient, tmp_path: Path) -> None:
    secret_url = "redis://operator:hunter2@127.0.0.1:1/0"
    client = make_client(broker_url=secret_url)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"] == {"database": "ok", "broker": "unreachable", "storage": "ok"}
    text = response.text
    for leak in ("operator", "hunter2", "127.0.0.1", "Error", "refused"):
        assert leak not in text, leak


def test_readyz_does_not_write_to_storage_on_every_call(make_client: MakeClient) -> None:
    client = make_client()
    calls = []
    real = client.app.state.storage  # type: ignore[attr-defined]

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(real(), name)

        def check(self) -> None:
            calls.append(1)
            real().check()

    client.app.state.storage = Counting  # type: ignore[attr-defined]
    for _ in range(5):
        client.get("/readyz")
    assert len(calls) == 1
    assert health.STORAGE_CHECK_TTL_S <= 60


def test_docs_load_nothing_from_another_host(open_client: TestClient) -> None:
    page = open_client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(src|href|url)\s*[=:]\s*["']([^"']+)["']""", page.text)
    assert {"src", "href", "url"} <= {kind for kind, _ in urls}, page.text
    for kind, url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        if kind != "url":  # the assets; `url` is the OpenAPI schema
            assert open_client.get(url).status_code == 200, url
    assert "swagger" in open_client.get("/docs/assets/swagger-ui-bundle.js").text.lower()
    assert "http://" not in page.text and "https://" not in page.text
    assert open_client.get("/redoc").status_code == 404


def test_docs_stay_open_with_keys_but_the_schema_is_all_they_show(keyed_client: TestClient) -> None:
    assert keyed_client.get("/docs").status_code == 200
    assert keyed_client.get("/api/v1/jobs").status_code == 401


def test_metrics_port_serves_metrics_on_loopback_and_not_on_the_api_port(make_client: MakeClient) -> None:
    port = free_port()
    client = make_client(api_keys=KEY, metrics_port=port)
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200)
    assert "mediajobs_jobs" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    response = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 404 and "MEDIAJOBS_METRICS_PORT" in response.json()["detail"]
    # Not behind the token on the main port either: it is simply not there.
    assert client.get("/metrics").status_code == 404


def test_docs_offer_the_bearer_token_when_auth_is_on(keyed_client: TestClient) -> None:
    schema = keyed_client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"] == {"type": "http", "scheme": "bearer"}
    assert schema["paths"]["/api/v1/jobs"]["post"]["security"] == [{"apiKey": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]
