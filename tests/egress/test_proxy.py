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
# How an MP4 file begins (its `ftyp` box): the proxy knows media by its first bytes.
MP4_START = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


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
        yield MP4_START
        yield from (b"\x00" * MiB for _ in range(20))

    url = attacker.add("/big.mp4", big_video, "video/mp4")
    with httpx.Client(proxy=guard.proxy_url, timeout=30) as client:
        assert len(client.get(url).content) == 20 * MiB + len(MP4_START)
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
    video = MP4_START + os.urandom(24 * MiB)
    url = attacker.add("/big.mp4", video, "video/mp4")
    with httpx.Client(proxy=guard.proxy_url, timeout=30) as client:
        got = client.get(url)
    assert got.headers["content-length"] == str(len(video))
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(video).digest()
    assert guard.failure() is None


def test_proxy_tunnel_passes_on_bytes_sent_along_with_connect(guard: Guard, attacker: Site) -> None:
    video = MP4_START + os.urandom(8 * MiB)
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


def _read_cut(guard: Guard, url: str) -> int:
    """Bytes a client got of `url` before the proxy cut it off (the read must end in an error)."""
    got = 0
    with (
        httpx.Client(proxy=guard.proxy_url, timeout=30) as client,
        client.stream("GET", url) as response,
        pytest.raises(httpx.HTTPError),
    ):
        for chunk in response.iter_raw():
            got += len(chunk)
    return got


def test_proxy_cuts_off_a_playlist_served_as_video(guard: Guard, attacker: Site) -> None:
    # 64 MiB of playlist, no Content-Length, typed as MPEG-TS: yt-dlp reads a playlist whole into memory.
    def huge_playlist() -> Iterator[bytes]:
        yield b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n"
        line = b"#EXTINF:4.0,\nhttp://127.0.0.2/segment.ts\n"
        for _ in range(64):
            yield line * (MiB // len(line))

    url = attacker.add("/live.ts", huge_playlist, "video/mp2t")
    assert _read_cut(guard, url) <= ProxyLimits().text_bytes
    assert attacker.sent_bytes < 40 * MiB
    assert guard.failure() is not None and guard.failure().code == "too_large"  # type: ignore[union-attr]


def test_proxy_cuts_off_bytes_whose_first_read_is_a_newline(guard: Guard, attacker: Site) -> None:
    def newline_then_text() -> Iterator[bytes]:
        yield b"\n"  # a read of its own: the sniffing must not decide on one byte
        for _ in range(20):
            yield b"a" * MiB

    url = attacker.add("/blob", newline_then_text, "application/octet-stream")
    assert _read_cut(guard, url) <= ProxyLimits().text_bytes
    assert guard.failure() is not None and guard.failure().code == "too_large"  # type: ignore[union-attr]


def test_proxy_refuses_a_declared_length_over_the_limit_unless_the_body_is_media(
    guard: Guard, attacker: Site
) -> None:
    big = attacker.add("/big.bin", b"\x00" * (9 * MiB), "video/mp4")  # no media starts with zeros
    with httpx.Client(proxy=guard.proxy_url, timeout=30) as client:
        assert client.get(big).status_code == 502
    assert guard.failure() is not None and guard.failure().code == "too_large"  # type: ignore[union-attr]


TS_PACKET = b"\x47\x40\x00\x10" + b"\xff" * 184
TS_PACKET_SIZE = 188
MEDIA_STARTS = {
    "mpegts": TS_PACKET * 3,
    "m2ts": (b"\x00\x00\x00\x00" + TS_PACKET) * 3,
    "mp4": MP4_START,
    "fmp4-segment": b"\x00\x00\x00\x18stypmsdh\x00\x00\x00\x00msdhmsix",
    "matroska": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01",
    "ogg": b"OggS\x00\x02" + b"\x00" * 20,
    "flv": b"FLV\x01\x05\x00\x00\x00\x09",
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00",
    "aac-adts": b"\xff\xf1\x50\x80\x02\x1f\xfc",
}


@pytest.mark.parametrize("kind", sorted(MEDIA_STARTS))
def test_proxy_relays_media_whatever_its_declared_type(tmp_path: Path, attacker: Site, kind: str) -> None:
    if kind in ("mpegts", "m2ts"):  # a transport stream is packets all the way through
        prefix = b"\x00\x00\x00\x00" if kind == "m2ts" else b""
        packets = 9 * MiB // TS_PACKET_SIZE
        body = b"".join(prefix + b"\x47" + os.urandom(TS_PACKET_SIZE - 1) for _ in range(packets))
    else:
        body = MEDIA_STARTS[kind] + os.urandom(9 * MiB)
    url = attacker.add(f"/{kind}", body, "text/html")  # a lie in the other direction: the bytes decide
    with (
        egress_guard(Settings(temp_dir=tmp_path), policy=PUBLIC_ATTACKER) as guard,
        httpx.Client(proxy=guard.proxy_url, timeout=30) as client,
    ):
        got = client.get(url)
        assert got.status_code == 200 and got.content == body
        assert guard.failure() is None


@pytest.mark.parametrize(
    "address",
    ["::ffff:0:7f00:1", "::ffff:0:a00:1", "::ffff:0:a9fe:a9fe", "::ffff:0:5db8:d822"],
)
def test_proxy_refuses_ipv4_translated_addresses(tmp_path: Path, address: str) -> None:
    async def translated(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(address)]

    settings = Settings(temp_dir=tmp_path)
    with (
        egress_guard(settings, policy=PUBLIC_ATTACKER, resolver=translated) as guard,
        httpx.Client(proxy=guard.proxy_url) as client,
    ):
        assert client.get("http://translated.example/").status_code == 403
        assert "IPv4-translated" in guard.refused[0], guard.refused


def _raw(guard: Guard, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", int(guard.proxy_url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(request)
        return b"".join(iter(lambda: sock.recv(65536), b""))


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nContent-Length: 50\r\n",
        b"Content-Length: 5, 50\r\n",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: +5\r\n",
    ],
)
def test_proxy_refuses_conflicting_framing(guard: Guard, attacker: Site, framing: bytes) -> None:
    # Request smuggling: the destination and the proxy must never disagree on where a body ends.
    attacker.add("/hook", b"ok", "text/plain")
    head = f"POST http://127.0.0.2:{attacker.port}/hook HTTP/1.1\r\nHost: 127.0.0.2\r\n".encode()
    answer = _raw(guard, head + framing + b"\r\nhello0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert attacker.connections == 0


def test_proxy_passes_one_content_length_when_a_client_repeats_the_same_one(
    guard: Guard, attacker: Site
) -> None:
    attacker.add("/hook", b"ok", "text/plain")
    head = f"POST http://127.0.0.2:{attacker.port}/hook HTTP/1.1\r\nHost: 127.0.0.2\r\n".encode()
    answer = _raw(guard, head + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok"), answer[:200]
    assert attacker.requests[-1] == ("POST", "/hook", b"hello")


def test_proxy_looks_inside_chunked_bodies(guard: Guard, attacker: Site) -> None:
    def ts_in_small_chunks() -> Iterator[bytes]:
        for _ in range(10 * MiB // (TS_PACKET_SIZE * 16)):
            yield TS_PACKET * 16

    def playlist_in_chunks() -> Iterator[bytes]:
        yield b"#EXTM3U\n"
        for _ in range(12):
            yield b"#EXTINF:4.0,\nx.ts\n" * (MiB // 18)

    chunked = {"Transfer-Encoding": "chunked"}
    video = attacker.add("/chunked.ts", ts_in_small_chunks, "application/octet-stream", headers=chunked)
    playlist = attacker.add("/chunked.m3u8", playlist_in_chunks, "video/mp2t", headers=chunked)
    with httpx.Client(proxy=guard.proxy_url, timeout=30) as client:
        got = client.get(video)
        assert got.status_code == 200 and len(got.content) > 9 * MiB
        assert got.content.startswith(TS_PACKET)
    assert guard.failure() is None
    assert _read_cut(guard, playlist) <= ProxyLimits().text_bytes + MiB  # the chunk framing counts too
    assert guard.failure() is not None
