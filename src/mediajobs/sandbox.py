"""What a child process may use: memory and CPU time (rlimits), and whether it has any network at all.

Network isolation uses a new, empty network namespace (`unshare --net`): the child sees only a loopback
interface that is down, so nothing it does can reach the host's network. That needs CAP_SYS_ADMIN (root, or a
container allowed to make namespaces); where it is missing, children run with the host's network and the
other defences (protocol allowlists, the egress proxy) stand alone.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Limits:
    """Resource limits applied in the child before it execs; None leaves a limit as inherited."""

    memory_bytes: int | None = None
    cpu_s: float | None = None

    def apply(self) -> None:
        """Set the limits on the calling process (run in the child, between fork and exec)."""
        if self.memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        if self.cpu_s:
            # SIGXCPU at the soft limit, SIGKILL a few seconds later if it is ignored.
            soft = max(1, int(self.cpu_s))
            resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))

    def merged(self, other: Limits | None) -> Limits:
        """These limits with `other`'s filled in where these leave one unset."""
        if other is None:
            return self
        return Limits(
            memory_bytes=self.memory_bytes or other.memory_bytes,
            cpu_s=self.cpu_s or other.cpu_s,
        )


@lru_cache(maxsize=1)
def netns_available() -> bool:
    """Whether this process may put children in a network namespace of their own."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        done = subprocess.run(
            [unshare, "--net", "--", "true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def without_network(argv: Sequence[str]) -> list[str]:
    """`argv` run in an empty network namespace when this machine allows it, else `argv` unchanged.

    `unshare` execs the program in place, so the pid, the process group and the parent-death signal are
    the program's own.
    """
    if not netns_available():
        return list(argv)
    return [shutil.which("unshare") or "unshare", "--net", "--", *argv]
