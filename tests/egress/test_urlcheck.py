from __future__ import annotations

import ipaddress

import pytest

from mediajobs.egress import urlcheck
from mediajobs.egress.policy import Policy, parse_networks
from mediajobs.egress.urlcheck import IPAddress, check_url
from mediajobs.errors import ForbiddenAddress, InvalidUrl, SourceUnreachable

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


def test_unknown_host_is_unreachable() -> None:
    with pytest.raises(SourceUnreachable, match="no such host"):
        urlcheck.resolve_host("nonexistent.invalid")


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
