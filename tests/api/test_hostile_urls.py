"""Import and webhook URLs with impossible host names are 422 at submit; a slow resolver holds no request.

In-process apps; the resolver seam (`egress.urlcheck.resolve_host`) is the test's: nothing here asks DNS.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator

import pytest

from mediajobs.egress import urlcheck
from mediajobs.egress.urlcheck import IPAddress
from tests.api.conftest import MakeClient, TestClient

HOSTILE = [
    "https://" + "a" * 70 + ".example/v.mp4",
    "HTTPS://" + "0" * 1000,
    "http://" + ".".join(["b" * 60] * 5) + "/v.mp4",
    "http://a\x00b/",
    "http://a\x00b.example/hook",
    "http://exa\tmple.com/v.mp4",
    "http://a..b.example/",
    "http://\u2603.example/",
]


def _submit(client: TestClient, route: str, url: str) -> object:
    if route == "imports":
        return client.post("/api/v1/media/imports", json={"url": url})
    return client.post("/api/v1/webhooks", json={"url": url, "events": ["job.failed"]})


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("route", ["imports", "webhooks"])
@pytest.mark.parametrize("url", HOSTILE)
def test_invalid_host_names_are_422_naming_the_url(
    make_client: MakeClient, route: str, url: str, allow_private: bool
) -> None:
    client = make_client(import_allow_private=allow_private)
    response = _submit(client, route, url)
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    problem = response.json()  # type: ignore[attr-defined]
    assert problem["errors"][0]["field"] == "url"
    assert "host" in problem["detail"] or "control character" in problem["detail"], problem["detail"]
    assert client.get("/api/v1/webhooks").json()["items"] == []
    assert client.get("/api/v1/media").json()["items"] == []


@pytest.fixture
def stuck_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A resolver that answers nothing for a minute (an attacker's name server can be made that slow)."""
    release = threading.Event()
    asked: list[str] = []

    def stuck(host: str) -> list[IPAddress]:
        asked.append(host)
        release.wait(60)
        return [ipaddress.ip_address("93.184.216.34")]

    monkeypatch.setattr(urlcheck, "resolve_host", stuck)
    yield asked
    release.set()


@pytest.mark.parametrize("route", ["imports", "webhooks"])
def test_a_slow_resolver_defers_the_check_and_the_answer_says_so(
    make_client: MakeClient, stuck_resolver: list[str], route: str
) -> None:
    client = make_client()
    started = time.monotonic()
    response = _submit(client, route, "https://slow.example/v.mp4")
    took_s = time.monotonic() - started
    assert response.status_code in (201, 202), response.text  # type: ignore[attr-defined]
    assert took_s < urlcheck.RESOLVE_TIMEOUT_S + 2, took_s
    check = response.headers["mediajobs-url-check"]  # type: ignore[attr-defined]
    assert check.startswith("deferred;") and "did not resolve within" in check, check
    assert stuck_resolver == ["slow.example"]
