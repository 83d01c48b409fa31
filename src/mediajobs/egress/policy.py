"""Which addresses and ports an import (or a webhook delivery) may reach: public ones only.

The tables are explicit rather than left to `ipaddress`'s flags, which call 192.0.0.192, 192.88.99.1,
fec0::1 and 6to4 forms of private addresses "global". Tunnel and translation forms (IPv4-mapped, 6to4,
NAT64, Teredo) are judged by the IPv4 address they carry; SIIT's IPv4-translated form is refused outright.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mediajobs.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance metadata endpoints, the classic SSRF target: named so the reason says so.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)


def _nets(*pairs: tuple[str, str]) -> list[tuple[IPNetwork, str]]:
    return [(ipaddress.ip_network(net), reason) for net, reason in pairs]


FORBIDDEN_V4 = _nets(
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
FORBIDDEN_V6 = _nets(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible"),
    # SIIT's IPv4-translated form (RFC 2765), ::ffff:0:a.b.c.d: never routed on the internet.
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
TEREDO = ipaddress.ip_network("2001::/32")


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (or bare addresses) as networks; raises ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def parse_ports(text: str) -> frozenset[int] | None:
    """Comma-separated ports as a set; None for "*" (any port)."""
    if text.strip() == "*":
        return None
    return frozenset(int(part) for part in text.split(",") if part.strip())


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address stands for: mapped, translated, 6to4, NAT64, Teredo (both ends)."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if address.ipv4_mapped is not None:
        found.append(("IPv4-mapped", address.ipv4_mapped))
    if address.sixtofour is not None:
        found.append(("6to4", address.sixtofour))
    if address in NAT64:
        found.append(("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)))
    if address in TRANSLATED:
        found.append(("IPv4-translated", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)))
    if address.teredo is not None:
        server, client = address.teredo
        found += [("Teredo server", server), ("Teredo client", client)]
    return found


def _v4_reason(address: ipaddress.IPv4Address) -> str | None:
    if address in METADATA:
        return "cloud metadata"
    for network, reason in FORBIDDEN_V4:
        if address in network:
            return reason
    return None if address.is_global else "not globally routable"


def forbidden_reason(address: IPAddress) -> str | None:
    """Why nothing may reach `address`, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv4Address):
        return _v4_reason(address)
    if address in METADATA:
        return "cloud metadata"
    for form, inner in embedded_ipv4(address):
        reason = _v4_reason(inner)
        if reason is not None:
            return f"{form} form of {inner} ({reason})"
    if address.ipv4_mapped is not None or address.sixtofour is not None or address in NAT64:
        return None  # judged by the public IPv4 address it carries
    for network, reason in FORBIDDEN_V6:
        if address in network:
            return reason
    return None if address.is_global else "not globally routable"


@dataclass(frozen=True)
class Policy:
    """Where outgoing connections may go: public addresses on allowed ports, unless private is allowed."""

    allow_private: bool = False
    public_networks: tuple[IPNetwork, ...] = ()
    ports: frozenset[int] | None = frozenset({80, 443})

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy the `import_*` settings describe."""
        return cls(
            allow_private=settings.import_allow_private,
            public_networks=parse_networks(settings.import_public_cidrs),
            ports=parse_ports(settings.import_allowed_ports or "80,443"),
        )

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why `address` is refused, or None when it may be reached."""
        if self.allow_private:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            mapped: IPAddress = address.ipv4_mapped
        else:
            mapped = address
        if any(mapped in network for network in self.public_networks if network.version == mapped.version):
            return None
        return forbidden_reason(address)

    def port_refusal(self, port: int) -> str | None:
        """Why `port` is refused, or None when it may be used."""
        if self.allow_private or self.ports is None or port in self.ports:
            return None
        allowed = ", ".join(str(p) for p in sorted(self.ports)) or "none"
        return f"port {port} is not allowed (allowed: {allowed})"
