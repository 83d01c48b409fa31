"""The early check of an import URL, at submit time: http(s), to a public address on an allowed port.

It answers the user at once (a 422) for the obvious cases. It is not the defence: a name can resolve
differently later, and redirects, pages and playlists lead elsewhere. The egress proxy checks every
connection the import really makes (see `mediajobs.egress`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import re
import socket
from urllib.parse import urlsplit

import idna

from mediajobs.egress.policy import IPAddress, Policy, forbidden_reason
from mediajobs.errors import (
    ForbiddenAddress,
    InvalidUrl,
    SourceTemporarilyUnreachable,
    SourceUnreachable,
)

__all__ = ["IPAddress", "check_host", "check_url", "forbidden_reason", "resolve_host"]

# How long a check waits for a name to resolve. A resolver that is slower (or made slow on purpose by whoever
# serves the name) must not hold the caller, an API request thread, any longer.
RESOLVE_TIMEOUT_S = 2.0
# Lookups run here, so that a stuck one holds a thread of this small pool, never the caller's.
_lookups = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="urlcheck-resolve")
LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
MAX_NAME = 253
MAX_LABEL = 63


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


def resolve_within(host: str, timeout_s: float = RESOLVE_TIMEOUT_S) -> list[IPAddress]:
    """`resolve_host(host)`, given up after `timeout_s` (SourceTemporarilyUnreachable saying so)."""
    lookup = _lookups.submit(lambda: resolve_host(host))
    try:
        return lookup.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError as exc:
        lookup.cancel()  # still queued behind stuck ones: it never runs
        raise SourceTemporarilyUnreachable(f"{host} did not resolve within {timeout_s:g} s") from exc


def check_host(host: str) -> str:
    """The host name as DNS spells it (lowercase ASCII, IDNA for international names), or InvalidUrl saying
    what is wrong with it: nothing with such a name can be fetched, so it is refused before any lookup."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host.strip("[]")))
    name = host.lower().removesuffix(".")
    if not name.isascii():
        try:
            name = idna.encode(name).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidUrl(f"the host {host!r} is not a valid international domain name: {exc}") from exc
    if len(name) > MAX_NAME:
        raise InvalidUrl(f"the host name has {len(name)} characters; at most {MAX_NAME} characters allowed")
    for label in name.split("."):
        if not label:
            raise InvalidUrl(f"the host {host!r} has an empty label (two dots in a row, or a leading dot)")
        if len(label) > MAX_LABEL:
            raise InvalidUrl(
                f"a label of the host name is {len(label)} characters long; labels (the parts between dots) "
                f"may have at most {MAX_LABEL} characters"
            )
        if not LABEL.fullmatch(label):
            raise InvalidUrl(
                f"the host {host!r} holds characters not allowed in a host name (letters, digits, '-' and "
                "'_' between dots)"
            )
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError) as exc:
                raise InvalidUrl(f"the host {host!r} is not a valid international domain name") from exc
    return name


def check_url(url: str, *, allow_private: bool = False, policy: Policy | None = None) -> str:
    """Return `url` if an import may fetch it; raise InvalidUrl or ForbiddenAddress otherwise.

    `policy` (built from the settings) wins over `allow_private`, which alone means "no port rule". A name
    that does not resolve within RESOLVE_TIMEOUT_S raises SourceTemporarilyUnreachable.
    """
    url = url.strip()
    control = next((c for c in url if c.isascii() and not c.isprintable()), None)
    if control is not None:
        raise InvalidUrl(f"the URL holds a control character ({control!r}); percent-encode it or remove it")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidUrl(f"not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidUrl(f"only http and https URLs can be imported, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise InvalidUrl("the URL has no host")
    host = check_host(parts.hostname)
    if port == 0:
        raise InvalidUrl("the URL has port 0")
    policy = policy or Policy(allow_private=allow_private, ports=None)
    if policy.allow_private:
        return url
    port_reason = policy.port_refusal(port or (443 if parts.scheme.lower() == "https" else 80))
    if port_reason is not None:
        raise ForbiddenAddress(f"{port_reason}: imports may only use those ports")
    # Every address must be public: a host that also resolves to 10.0.0.1 could be answered from there.
    for address in resolve_within(host):
        reason = policy.address_refusal(address)
        if reason is not None:
            raise ForbiddenAddress(f"{host} resolves to {address} ({reason}), which imports may not reach")
    return url
