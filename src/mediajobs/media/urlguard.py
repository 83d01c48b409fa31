"""Which URLs an import may fetch: http(s) to public addresses only, checked again at every redirect."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import httpx

from mediajobs.errors import (
    ForbiddenAddress,
    InvalidUrl,
    SourceTemporarilyUnreachable,
    SourceUnreachable,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata endpoints, the classic SSRF target: named in case a range check misses them.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
GONE = {404: "Not Found", 410: "Gone"}


def resolve_host(host: str) -> list[IPAddress]:
    """Every address `host` resolves to (the seam tests replace to simulate DNS)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise SourceTemporarilyUnreachable(f"could not resolve {host}: DNS is not answering") from exc
        raise SourceUnreachable(f"could not resolve {host}: no such host") from exc
    # Scoped IPv6 results carry "%iface"; the address part is what matters for the checks.
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def forbidden_reason(address: IPAddress) -> str | None:
    """Why imports may not reach `address`, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    for reason, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return reason
    # Shared (100.64/10), benchmarking and the other special ranges are not global either.
    return None if address.is_global else "not globally routable"


def check_url(url: str, *, allow_private: bool) -> str:
    """Return `url` if an import may fetch it; raise InvalidUrl or ForbiddenAddress otherwise."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidUrl(f"not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidUrl(f"only http and https URLs can be imported, not {parts.scheme or 'no scheme'!r}")
    host = parts.hostname
    if not host:
        raise InvalidUrl("the URL has no host")
    if port == 0:
        raise InvalidUrl("the URL has port 0")
    if allow_private:
        return url.strip()
    # Every address must be public: a host that also resolves to 10.0.0.1 could be answered from there.
    for address in resolve_host(host):
        reason = forbidden_reason(address)
        if reason is not None:
            raise ForbiddenAddress(f"{host} resolves to {address} ({reason}), which imports may not reach")
    return url.strip()


def resolve_redirects(url: str, *, allow_private: bool, max_hops: int = 10, timeout_s: float = 10) -> str:
    """Follow redirects by hand, vetting every hop with check_url; return the final URL."""
    current = check_url(url, allow_private=allow_private)
    with httpx.Client(follow_redirects=False, timeout=timeout_s) as client:
        for _ in range(max_hops + 1):
            status, location = _fetch_head(client, current)
            if 300 <= status < 400 and location:
                current = check_url(urljoin(current, location), allow_private=allow_private)
                continue
            if status < 300:
                return current
            raise _status_error(status, current)
    raise SourceUnreachable(f"more than {max_hops} redirects starting from {url}")


def _fetch_head(client: httpx.Client, url: str) -> tuple[int, str | None]:
    """(status, Location) from a HEAD, or from a GET whose body is never read when HEAD is refused."""
    try:
        response = client.head(url)
        if response.status_code < 400:
            return response.status_code, response.headers.get("location")
        # Plenty of servers answer HEAD with 403/405/404 while GET works; only GET's answer is believed.
        with client.stream("GET", url) as streamed:
            return streamed.status_code, streamed.headers.get("location")
    except httpx.TimeoutException as exc:
        raise SourceTemporarilyUnreachable(f"{_host(url)} did not answer in time") from exc
    except httpx.ConnectError as exc:
        raise SourceUnreachable(f"could not connect to {_host(url)}: {_why(exc)}") from exc
    except httpx.TransportError as exc:
        raise SourceTemporarilyUnreachable(f"connection to {_host(url)} failed: {_why(exc)}") from exc


def _status_error(status: int, url: str) -> SourceUnreachable | SourceTemporarilyUnreachable:
    if status in GONE:
        return SourceUnreachable(f"the server answered {status} {GONE[status]} for {url}")
    if status == 429 or status >= 500:
        return SourceTemporarilyUnreachable(f"the server answered {status} for {url}")
    return SourceUnreachable(f"the server refused the request with {status} for {url}")


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _why(exc: Exception) -> str:
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "no such host"
    if "Connection refused" in text:
        return "connection refused"
    return text or type(exc).__name__
