from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mediajobs.config import Settings
from mediajobs.egress import Guard, egress_guard
from mediajobs.egress.policy import IPAddress, Policy, parse_networks
from mediajobs.egress.proxy import ProxyLimits
from tests.egress.sites import Site

PUBLIC_ATTACKER = Policy(public_networks=parse_networks("127.0.0.2/32"), ports=None)
MiB = 1024 * 1024


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[Guard]:
    with egress_guard(Settings(temp_dir=tmp_path), policy=PUBLIC_ATTACKER) as running:
        yield running


def test_proxy_forwards_to_public_host_and_refuses_internal_one(
    guard: Guard, attacker: Site, internal: Site
) -> None:
    public = attacker.add("/clip.mp4", b"video bytes", "video/mp4")
    with httpx.Client(proxy=guard.proxy_url) as client:
        assert client.get(public).content == b"video bytes"
        refused = client.get(internal.url("/latest/meta-data/iam"))

    assert refused.status_code == 403 and b"SECRET" not in refused.content
    assert internal.connections == 0
    assert guard.refused == [f"127.0.0.1:{internal.port} resolves to 127.0.0.1 (loopback)"]
    assert guard.failure() is not None and guard.failure().code == "forbidden_address"  # type: ignore[union-attr]


def test_proxy_refuses_https_tunnels_to_internal_hosts(guard: Guard, internal: Site) -> None:
    with socket.create_connection(("127.0.0.1", int(guard.proxy_url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{internal.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 403")
    assert internal.connections == 0 and guard.failure() is not None


def test_proxy_tunnels_connect_to_public_host(guard: Guard, attacker: Site) -> None:
    attacker.add("/a", b"through the tunnel", "text/plain")
    with socket.create_connection(("127.0.0.1", int(guard.proxy_url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(f"CONNECT 127.0.0.2:{attacker.port} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.endswith(b"through the tunnel")


def test_proxy_refuses_ports_outside_the_allowed_list(tmp_path: Path, attacker: Site) -> None:
    policy = Policy(public_networks=parse_networks("127.0.0.2/32"), ports=frozenset({80, 443}))
    url = attacker.add("/clip.mp4", b"x", "video/mp4")
    with egress_guard(Settings(temp_dir=tmp_path), policy=policy) as guard:
        with httpx.Client(proxy=guard.proxy_url) as client:
            assert client.get(url).status_code == 403
        assert "is not allowed" in guard.refused[0]
    assert attacker.connections == 0


def test_proxy_resolves_once_and_connects_to_the_address_it_checked(
    tmp_path: Path, attacker: Site, internal: Site
) -> None:
    # A rebinding name: public on the first lookup, internal on every later one. The attacker's server
    # listens on the same port number on 127.0.0.2 as far as the test is concerned: the internal server
    # must never be reached, whatever the answer.
    answers = [[ipaddress.ip_address("127.0.0.2")], [ipaddress.ip_address("127.0.0.1")]]
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return answers[min(len(asked), 2) - 1]

    attacker.add("/clip.mp4", b"public bytes", "video/mp4")
    settings = Settings(temp_dir=tmp_path)
    with (
        egress_guard(settings, policy=PUBLIC_ATTACKER, resolver=rebinding) as guard,
        httpx.Client(proxy=guard.proxy_url) as client,
    ):
        first = client.get(f"http://rebind.example:{attacker.port}/clip.mp4")
        second = client.get(f"http://rebind.example:{internal.port}/latest/meta-data/iam")

    assert first.content == b"public bytes"
    assert second.status_code == 403
    assert asked == ["rebind.example", "rebind.example"]  # one lookup per connection, none behind it
    assert internal.connections == 0


def test_proxy_refuses_a_name_when_any_address_is_internal(tmp_path: Path, internal: Site) -> None:
    async def mixed(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")]

    settings = Settings(temp_dir=tmp_path)
    with (
        egress_guard(settings, policy=PUBLIC_ATTACKER, resolver=mixed) as guard,
        httpx.Client(proxy=guard.proxy_url) as client,
    ):
        assert client.get(f"http://both.example:{internal.port}/").status_code == 403
    assert internal.connections == 0


def _endless_html() -> Iterator[bytes]:
    yield b"<html><body>"
    for _ in range(150):
        yield b"<p>" + b"a" * (MiB - 7) + b"</p>"


def test_proxy_cuts_off_pages_over_the_text_limit(guard: Guard, attacker: Site) -> None:
    url = attacker.add("/page.html", _endless_html, "text/html")
    with httpx.Client(proxy=guard.proxy_url, timeout=30) as client, client.stream("GET", url) as response:
        got = 0
        with pytest.raises(httpx.HTTPError):
            for chunk in response.iter_raw():
                got += len(chunk)

    assert got <= ProxyLimits().text_bytes
    assert attacker.sent_bytes < 40 * MiB  # what the proxy read before it hung up, socket buffers included
    assert guard.failure() is not None and guard.failure().code == "too_large"  # type: ignore[union-attr]


def test_proxy_sniffs_pages_served_as_bytes(guard: Guard, attacker: Site) -> None:
    url = attacker.add("/page.bin", _endless_html, "application/octet-stream")
    with httpx.Client(proxy=guard.proxy_url, timeout=30) as client, pytest.raises(httpx.HTTPError):
        client.get(url)
    assert guard.failure() is not None


def test_proxy_relays_media_of_any_size(guard: Guard, attacker: Site) -> None:
    def big_video() -> Iterator[bytes]:
        yield from (b"\x00" * MiB for _ in range(20))

    url = attacker.add("/big.mp4", big_video, "video/mp4")
    with httpx.Client(proxy=guard.proxy_url, timeout=30) as client:
        assert len(client.get(url).content) == 20 * MiB
    assert guard.failure() is None


def test_proxy_forwards_post_bodies(guard: Guard, attacker: Site) -> None:
    url = attacker.add("/hook", b"ok", "text/plain")
    with httpx.Client(proxy=guard.proxy_url) as client:
        assert client.post(url, content=b'{"event": 1}').text == "ok"
    assert attacker.requests[-1] == ("POST", "/hook", b'{"event": 1}')


def test_proxy_refuses_oversized_request_heads(guard: Guard, attacker: Site) -> None:
    url = attacker.add("/a", b"x", "text/plain")
    with httpx.Client(proxy=guard.proxy_url) as client:
        assert client.get(url, headers={"X-Big": "a" * 100_000}).status_code == 431
    assert attacker.connections == 0


def test_proxy_refuses_other_schemes(guard: Guard, internal: Site) -> None:
    with socket.create_connection(("127.0.0.1", int(guard.proxy_url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(f"GET ftp://127.0.0.2:{internal.port}/x HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 403")


def test_proxy_relays_a_large_media_file_byte_for_byte(guard: Guard, attacker: Site) -> None:
    video = os.urandom(24 * MiB)
    url = attacker.add("/big.mp4", video, "video/mp4")
    with httpx.Client(proxy=guard.proxy_url, timeout=30) as client:
        got = client.get(url)
    assert got.headers["content-length"] == str(len(video))
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(video).digest()
    assert guard.failure() is None


def test_proxy_tunnel_passes_on_bytes_sent_along_with_connect(guard: Guard, attacker: Site) -> None:
    video = os.urandom(8 * MiB)
    attacker.add("/v.mp4", video, "video/mp4")
    with socket.create_connection(("127.0.0.1", int(guard.proxy_url.rsplit(":", 1)[1]))) as sock:
        # The request rides in the same write as CONNECT: it must reach the host, not stay in the proxy.
        sock.sendall(
            f"CONNECT 127.0.0.2:{attacker.port} HTTP/1.1\r\n\r\n"
            "GET /v.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b"".join(iter(lambda: sock.recv(1 << 20), b""))
    assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK")
    assert answer.endswith(video)
