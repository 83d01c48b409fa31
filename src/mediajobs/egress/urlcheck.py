"""The early check of an import URL, at submit time: http(s), to a public address on an allowed port.

It answers the user at once (a 422) for the obvious cases. It is not the defence: a name can resolve
differently later, and redirects, pages and playlists lead elsewhere. The egress proxy checks every
connection the import really makes (see `mediajobs.egress`).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from mediajobs.egress.policy import IPAddress, Policy, forbidden_reason
from mediajobs.errors import (
    ForbiddenAddress,
    InvalidUrl,
    SourceTemporarilyUnreachable,
    SourceUnreachable,
)

__all__ = ["IPAddress", "check_url", "forbidden_reason", "resolve_host"]


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


def check_url(url: str, *, allow_private: bool = False, policy: Policy | None = None) -> str:
    """Return `url` if an import may fetch it; raise InvalidUrl or ForbiddenAddress otherwise.

    `policy` (built from the settings) wins over `allow_private`, which alone means "no port rule".
    """
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
    policy = policy or Policy(allow_private=allow_private, ports=None)
    if policy.allow_private:
        return url.strip()
    port_reason = policy.port_refusal(port or (443 if parts.scheme.lower() == "https" else 80))
    if port_reason is not None:
        raise ForbiddenAddress(f"{port_reason}: imports may only use those ports")
    # Every address must be public: a host that also resolves to 10.0.0.1 could be answered from there.
    for address in resolve_host(host):
        reason = policy.address_refusal(address)
        if reason is not None:
            raise ForbiddenAddress(f"{host} resolves to {address} ({reason}), which imports may not reach")
    return url.strip()
