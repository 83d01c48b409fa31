"""The egress guard: every connection an import (or a webhook delivery) makes goes through our proxy.

    with egress_guard(settings) as guard:
        httpx.Client(proxy=guard.proxy_url)          # in-process clients
        argv, env = guard.wrap(["yt-dlp", ...])       # children: proxy variables, and a jail where possible
        if (error := guard.failure()) is not None: raise error

Where network namespaces are available, `wrap` runs the child in one whose only way out is the proxy (see
`jail`: the proxy itself listens inside it), so a tool that ignores proxy settings has no network at all.
Elsewhere children get the proxy variables (and yt-dlp `--proxy`) only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Imported on first use: the yt-dlp entry point lives in this package and starts in every import child,
# where pydantic and the proxy would only add start-up time.
if TYPE_CHECKING:
    from mediajobs.egress.guard import Guard, egress_guard
    from mediajobs.egress.policy import Policy

__all__ = ["Guard", "Policy", "egress_guard"]


def __getattr__(name: str) -> Any:
    if name in ("Guard", "egress_guard"):
        from mediajobs.egress import guard

        return getattr(guard, name)
    if name == "Policy":
        from mediajobs.egress.policy import Policy

        return Policy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
