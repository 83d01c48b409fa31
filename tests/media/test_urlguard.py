from __future__ import annotations

import ipaddress
import socket
from urllib.parse import quote

import pytest

from mediajobs.errors import (
    ForbiddenAddress,
    InvalidUrl,
    SourceTemporarilyUnreachable,
    SourceUnreachable,
)
from mediajobs.media import urlguard
from mediajobs.media.urlguard import IPAddress, check_url, resolve_redirects
from tests.media.conftest import Served

PUBLIC = "93.184.216.34"


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    """Replace the resolver seam; return the list of hosts looked up."""
    asked: list[str] = []

    def resolve(host: str) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address(a) for a in table[host]]

    monkeypatch.setattr(urlguard, "resolve_host", resolve)
    return asked


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a.mp4", "file:///etc/passwd", "javascript:alert(1)", "example.com/a.mp4", "//x/y"],
)
def test_check_url_rejects_schemes_other_than_http(url: str) -> None:
    with pytest.raises(InvalidUrl) as caught:
        check_url(url, allow_private=True)
    assert caught.value.code == "invalid_url"


@pytest.mark.parametrize("url", ["http://", "https:///video.mp4", "http://:80/x", "http://host:99999/"])
def test_check_url_rejects_urls_without_a_usable_host(url: str) -> None:
    with pytest.raises(InvalidUrl):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.10",
        "169.254.169.254",
        "[fd00:ec2::254]",
        "169.254.1.1",
        "[fe80::1]",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "100.64.0.1",
        "[::ffff:127.0.0.1]",
        "[fc00::1]",
    ],
)
def test_check_url_refuses_non_public_addresses(host: str) -> None:
    with pytest.raises(ForbiddenAddress) as caught:
        check_url(f"http://{host}/video.mp4", allow_private=False)
    assert caught.value.code == "forbidden_address"


def test_check_url_names_the_metadata_endpoint() -> None:
    with pytest.raises(ForbiddenAddress, match="cloud metadata"):
        check_url("http://169.254.169.254/latest/meta-data/", allow_private=False)


def test_check_url_allows_public_address() -> None:
    assert check_url(f"https://{PUBLIC}/a.mp4", allow_private=False) == f"https://{PUBLIC}/a.mp4"


def test_check_url_allows_private_when_configured() -> None:
    assert check_url("http://127.0.0.1:8000/a.mp4", allow_private=True) == "http://127.0.0.1:8000/a.mp4"


def test_check_url_refuses_localhost_by_name() -> None:
    with pytest.raises(ForbiddenAddress, match="loopback"):
        check_url("http://localhost/a.mp4", allow_private=False)


def test_check_url_refuses_host_with_any_private_address(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"cdn.example": [PUBLIC, "10.0.0.7"]})

    with pytest.raises(ForbiddenAddress, match=r"10\.0\.0\.7"):
        check_url("https://cdn.example/a.mp4", allow_private=False)


def test_check_url_resolves_names_through_the_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"cdn.example": [PUBLIC, "2606:2800:220:1::1"]})

    assert check_url("https://cdn.example/a.mp4", allow_private=False) == "https://cdn.example/a.mp4"
    assert asked == ["cdn.example"]


def test_unknown_host_is_unreachable() -> None:
    with pytest.raises(SourceUnreachable, match="no such host"):
        urlguard.resolve_host("nonexistent.invalid")


def test_resolve_redirects_follows_every_hop(served: Served) -> None:
    (served.root / "a.mp4").write_bytes(b"x" * 100)
    inner = served.url(f"/redirect?to={quote(served.url('/a.mp4'), safe='')}")
    outer = served.url(f"/redirect?to={quote(inner, safe='')}")

    assert resolve_redirects(outer, allow_private=True) == served.url("/a.mp4")


def test_resolve_redirects_handles_relative_locations(served: Served) -> None:
    (served.root / "a.mp4").write_bytes(b"x")

    assert resolve_redirects(served.url("/redirect?to=/a.mp4"), allow_private=True) == served.url("/a.mp4")


def test_resolve_redirects_falls_back_to_get_when_head_is_refused(served: Served) -> None:
    (served.root / "a.mp4").write_bytes(b"x" * 10)

    url = served.url("/get-only/a.mp4")
    assert resolve_redirects(url, allow_private=True) == url


def test_redirect_to_private_address_is_refused(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    # The local server plays a public host; its redirect points into the private network.
    fake_dns(monkeypatch, {"127.0.0.1": [PUBLIC], "intranet.example": ["10.0.0.5"]})
    url = served.url("/redirect?to=" + quote("http://intranet.example/secret.mp4", safe=""))

    with pytest.raises(ForbiddenAddress, match=r"10\.0\.0\.5"):
        resolve_redirects(url, allow_private=False)


def test_redirect_to_metadata_endpoint_is_refused(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"127.0.0.1": [PUBLIC], "169.254.169.254": ["169.254.169.254"]})
    url = served.url("/redirect?to=" + quote("http://169.254.169.254/latest/meta-data/", safe=""))

    with pytest.raises(ForbiddenAddress, match="cloud metadata"):
        resolve_redirects(url, allow_private=False)


def test_resolve_redirects_reports_missing_source(served: Served) -> None:
    with pytest.raises(SourceUnreachable, match="404 Not Found"):
        resolve_redirects(served.url("/missing.mp4"), allow_private=True)
    with pytest.raises(SourceUnreachable, match="410 Gone"):
        resolve_redirects(served.url("/status/410"), allow_private=True)


def test_resolve_redirects_treats_server_errors_as_temporary(served: Served) -> None:
    with pytest.raises(SourceTemporarilyUnreachable, match="503"):
        resolve_redirects(served.url("/status/503"), allow_private=True)


def test_resolve_redirects_gives_up_on_redirect_loops(served: Served) -> None:
    with pytest.raises(SourceUnreachable, match="more than 3 redirects"):
        resolve_redirects(served.url("/loop"), allow_private=True, max_hops=3)


def test_resolve_redirects_reports_refused_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    with pytest.raises(SourceUnreachable, match="connection refused"):
        resolve_redirects(f"http://127.0.0.1:{port}/a.mp4", allow_private=True)


def test_resolve_redirects_times_out_as_temporary() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # accepts the connection but never answers
        port = sock.getsockname()[1]
        with pytest.raises(SourceTemporarilyUnreachable, match="did not answer in time"):
            resolve_redirects(f"http://127.0.0.1:{port}/a.mp4", allow_private=True, timeout_s=0.3)
