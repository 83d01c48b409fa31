from __future__ import annotations

import ipaddress
import socket
import threading
import time

import pytest

from mediajobs.egress import urlcheck
from mediajobs.egress.policy import Policy, parse_networks
from mediajobs.egress.urlcheck import IPAddress, check_url
from mediajobs.errors import (
    ForbiddenAddress,
    InvalidUrl,
    SourceTemporarilyUnreachable,
    SourceUnreachable,
)

PUBLIC = "93.184.216.34"


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    """Replace the resolver seam; return the list of hosts looked up."""
    asked: list[str] = []

    def resolve(host: str) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address(a) for a in table[host]]

    monkeypatch.setattr(urlcheck, "resolve_host", resolve)
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
        # Forms the old check let through: 6to4 of 169.254.169.254, site-local, IETF/Oracle, 6to4 relay.
        "[2002:a9fe:a9fe::]",
        "[fec0::1]",
        "192.0.0.192",
        "192.88.99.1",
        "[64:ff9b::7f00:1]",
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
        "198.18.0.1",
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


@pytest.mark.parametrize(
    ("errno", "error", "says"),
    [
        (socket.EAI_NONAME, SourceUnreachable, "no such host"),
        (socket.EAI_AGAIN, SourceTemporarilyUnreachable, "DNS is not answering"),
    ],
)
def test_resolver_errors_say_what_happened(
    monkeypatch: pytest.MonkeyPatch, errno: int, error: type[Exception], says: str
) -> None:
    def no_answer(*args: object, **kwargs: object) -> None:  # the system resolver, without asking DNS
        raise socket.gaierror(errno, "resolver says no")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    with pytest.raises(error, match=says):
        urlcheck.resolve_host("nonexistent.example")


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("[2002:a9fe:a9fe::]", "6to4 form of 169.254.169.254"),
        ("[fec0::1]", "site-local"),
        ("192.0.0.192", "cloud metadata"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("100.100.100.200", "cloud metadata"),
        ("[64:ff9b::a9fe:a9fe]", "NAT64 form of 169.254.169.254"),
    ],
)
def test_check_url_says_which_form_it_refused(host: str, reason: str) -> None:
    with pytest.raises(ForbiddenAddress, match=reason):
        check_url(f"http://{host}/video.mp4", allow_private=False)


def test_check_url_allows_6to4_and_nat64_forms_of_public_addresses() -> None:
    # 93.184.216.34 as 6to4 and NAT64: judged by the address carried, which is public.
    for host in ("[2002:5db8:d822::1]", "[64:ff9b::5db8:d822]"):
        assert check_url(f"http://{host}/a.mp4", allow_private=False)


def test_check_url_refuses_ports_outside_the_allowed_list() -> None:
    policy = Policy(ports=frozenset({80, 443}))

    assert check_url(f"https://{PUBLIC}/a.mp4", policy=policy)
    assert check_url(f"http://{PUBLIC}:80/a.mp4", policy=policy)
    with pytest.raises(ForbiddenAddress, match="port 8080 is not allowed"):
        check_url(f"http://{PUBLIC}:8080/a.mp4", policy=policy)
    assert check_url(f"http://{PUBLIC}:8080/a.mp4", policy=Policy(ports=None))


def test_public_cidrs_make_a_loopback_address_count_as_public() -> None:
    policy = Policy(public_networks=parse_networks("127.0.0.2/32"), ports=None)

    assert check_url("http://127.0.0.2:8000/a.mp4", policy=policy)
    with pytest.raises(ForbiddenAddress, match="loopback"):
        check_url("http://127.0.0.1:8000/a.mp4", policy=policy)


@pytest.mark.parametrize("host", ["[::ffff:0:7f00:1]", "[::ffff:0:a9fe:a9fe]", "[::ffff:0:5db8:d822]"])
def test_check_url_refuses_ipv4_translated_addresses(host: str) -> None:
    with pytest.raises(ForbiddenAddress, match="IPv4-translated"):
        check_url(f"http://{host}/video.mp4", allow_private=False)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://" + "a" * 70 + ".example/v.mp4", "at most 63 characters"),
        ("HTTPS://" + "0" * 1000, "at most 253 characters"),
        ("http://" + ".".join(["a" * 60] * 5) + "/v.mp4", "at most 253 characters"),
        ("http://a\x00b/", "control character"),
        ("http://a\x00b.example/hook", "control character"),
        ("http://exa\nmple.com/v.mp4", "control character"),
        ("http://example.com/v\x7f.mp4", "control character"),
        ("http://a b.example/", "not allowed in a host name"),
        ("http://a..b.example/", "empty label"),
        ("http://a%00b.example/", "not allowed in a host name"),
        ("http://\u2603.example/", "not a valid international"),
        ("http://xn--a.example/", "not a valid international"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_check_url_refuses_invalid_host_names(url: str, says: str, allow_private: bool) -> None:
    # Before any lookup, whatever the policy: such a name could never be imported or delivered to.
    with pytest.raises(InvalidUrl, match=says):
        check_url(url, allow_private=allow_private)


def test_check_url_accepts_international_names_as_their_ascii_form(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"xn--bcher-kva.example": [PUBLIC]})

    assert check_url("https://B\u00fccher.example/a.mp4", allow_private=False)
    assert check_url("https://bucher_cdn.example./a.mp4", allow_private=True)  # underscores are real
    assert asked == ["xn--bcher-kva.example"]


def test_a_slow_resolver_is_given_up_on_after_a_short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    calls: list[str] = []

    def stuck(host: str) -> list[IPAddress]:
        calls.append(host)
        release.wait(60)
        return [ipaddress.ip_address(PUBLIC)]

    monkeypatch.setattr(urlcheck, "resolve_host", stuck)
    try:
        for _ in range(3):  # more than once: a stuck lookup ties up nothing the next check needs
            started = time.monotonic()
            with pytest.raises(SourceTemporarilyUnreachable, match="did not resolve within"):
                check_url("https://slow.example/a.mp4", allow_private=False)
            assert time.monotonic() - started < urlcheck.RESOLVE_TIMEOUT_S + 1.0
    finally:
        release.set()
    assert calls and set(calls) == {"slow.example"}
