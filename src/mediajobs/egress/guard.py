"""The egress guard: a running proxy, and how clients and children go through it."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from mediajobs.config import Settings
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

# sockaddr_un holds 108 bytes; deep temp dirs fall back to the system's.
_SOCKET_PATH_MAX = 100
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class Guard:
    """A running egress proxy, and how to send clients and children through it."""

    def __init__(self, proxy: EgressProxy, *, jail: bool) -> None:
        self._proxy = proxy
        self.jail = jail

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
        """`argv` to run a child through the proxy, and the environment variables to add for it."""
        env = dict.fromkeys(PROXY_VARIABLES, self.proxy_url) | {"no_proxy": "", "NO_PROXY": ""}
        if not self.jail:
            return list(argv), env
        assert self._proxy.socket_path is not None
        jail = [sys.executable, "-m", "mediajobs.egress.jail"]
        jail += ["--socket", str(self._proxy.socket_path), "--port", str(self._proxy.port), "--"]
        return [shutil.which("unshare") or "unshare", "--net", "--", *jail, *argv], env

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
    temp_dir: Path | None = None,
) -> Iterator[Guard]:
    """Run an egress proxy for the duration of the block (the policy comes from the `import_*` settings).

    Its Unix socket goes in `temp_dir` (a job's own temp dir, reclaimed with it if the worker dies), or in
    the configured temp dir.
    """
    directory = Path(
        tempfile.mkdtemp(prefix="egress-", dir=_socket_parent(temp_dir or settings.effective_temp_dir))
    )
    proxy = EgressProxy(policy or Policy.from_settings(settings), resolver=resolver)
    proxy.socket_path = directory / "proxy.sock"
    try:
        proxy.start()
        yield Guard(proxy, jail=netns_available() if jail is None else jail)
    finally:
        proxy.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _socket_parent(parent: Path) -> str | None:
    with contextlib.suppress(OSError):
        parent.mkdir(parents=True, exist_ok=True)
        if len(str(parent)) + len("/egress-xxxxxxxx/proxy.sock") <= _SOCKET_PATH_MAX:
            return str(parent)
    return None
