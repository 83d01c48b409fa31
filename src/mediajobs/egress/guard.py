"""The egress guard: a running proxy, and how clients and children go through it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from mediajobs.config import Settings
from mediajobs.egress.jail import Jail
from mediajobs.egress.policy import Policy
from mediajobs.egress.proxy import EgressProxy, Resolver, system_resolver
from mediajobs.errors import (
    ForbiddenAddress,
    MediajobsError,
    SourceTemporarilyUnreachable,
    SourceUnreachable,
    TooLarge,
)
from mediajobs.sandbox import netns_available

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class Guard:
    """A running egress proxy, and how to send clients and children through it."""

    def __init__(self, proxy: EgressProxy, *, jail: bool) -> None:
        self._proxy = proxy
        self.jail = jail
        self._jail: Jail | None = None

    @property
    def policy(self) -> Policy:
        return self._proxy.policy

    @property
    def proxy_url(self) -> str:
        """The proxy for in-process clients (and, inside the jail, the same address for children)."""
        return f"http://127.0.0.1:{self._proxy.port}"

    @property
    def refused(self) -> list[str]:
        """Destinations refused so far, with the reason (for logs, not for users)."""
        return list(self._proxy.refused)

    def wrap(self, argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """`argv` to run a child through the proxy, and the environment variables to add for it.

        Run it with `process.run(argv, env=env, network=guard.network, untrusted=True)`.
        """
        env = dict.fromkeys(PROXY_VARIABLES, self.proxy_url) | {"no_proxy": "", "NO_PROXY": ""}
        if self.jail and self._jail is None:
            # Made on first use (webhook deliveries never need one); every child of this guard shares it.
            self._jail = Jail.make(self._proxy.port)
            self._proxy.serve(self._jail.listener)
        return list(argv), env

    @property
    def network(self) -> bool | int:
        """The `network` of `process.run` for wrapped children: the jail's namespace, or the host's."""
        return self._jail.namespace_fd if self._jail is not None else True

    def close(self) -> None:
        """Let the jail's namespace go (the proxy has stopped answering in it)."""
        if self._jail is not None:
            self._jail.close()

    def failure(self) -> MediajobsError | None:
        """Why the work must fail because of what the proxy saw: a refused destination, a page cut off."""
        if self._proxy.refused:
            # Nothing about the refused destination's state (open, closed, answering): it was never contacted.
            return ForbiddenAddress("the source led to an address or port that imports may not reach")
        if self._proxy.cut_off:
            limit = self._proxy.limits.text_bytes
            return TooLarge(f"the source sent a page or playlist larger than the {limit} byte limit")
        return None

    def unreachable(self) -> MediajobsError | None:
        """The last failed connection to an allowed (public) destination, with its specific message."""
        if not self._proxy.unreachable:
            return None
        last = self._proxy.unreachable[-1]
        return SourceTemporarilyUnreachable(last) if "timed out" in last else SourceUnreachable(last)


@contextlib.contextmanager
def egress_guard(
    settings: Settings,
    *,
    policy: Policy | None = None,
    resolver: Resolver = system_resolver,
    jail: bool | None = None,
) -> Iterator[Guard]:
    """Run an egress proxy for the duration of the block (the policy comes from the `import_*` settings).

    `jail` (default: wherever this machine allows network namespaces) runs wrapped children in one whose
    only way out is the proxy.
    """
    proxy = EgressProxy(policy or Policy.from_settings(settings), resolver=resolver)
    if jail is None:
        jail = netns_available()
    proxy.start()
    guard = Guard(proxy, jail=jail)
    try:
        yield guard
    finally:
        proxy.stop()
        guard.close()
