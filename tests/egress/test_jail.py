from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mediajobs import process
from mediajobs.config import Settings
from mediajobs.egress import Guard, egress_guard
from mediajobs.egress.policy import Policy, parse_networks
from mediajobs.sandbox import netns_available
from tests.egress.sites import Site

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs network namespaces (root)")
POLICY = Policy(public_networks=parse_networks("127.0.0.2/32"), ports=None)
# A client that ignores every proxy setting and connects straight to where it is told.
DIRECT = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
    "s.sendall(b'GET /clip.mp4 HTTP/1.0\\r\\n\\r\\n'); print(s.recv(100))\n"
)


def _run(argv: list[str], env: dict[str, str], guard: Guard | None = None) -> process.Completed:
    """Run as imports run yt-dlp: through the guard's jail when there is one."""
    network = guard.network if guard is not None else True
    return process.run(argv, env=env, network=network, untrusted=True, check=False, capture_stdout=True)


def test_a_tool_that_ignores_the_proxy_has_no_network_in_the_jail(tmp_path: Path, attacker: Site) -> None:
    attacker.add("/clip.mp4", b"video", "video/mp4")
    direct = [sys.executable, "-c", DIRECT, "127.0.0.2", str(attacker.port)]
    assert "200" in _run(direct, {}).stdout  # outside the jail the same client gets through

    with egress_guard(Settings(temp_dir=tmp_path), policy=POLICY) as guard:
        argv, env = guard.wrap(direct)
        jailed = _run(argv, env, guard)

    assert jailed.returncode != 0 and "ConnectionRefusedError" in jailed.stderr_tail
    assert attacker.connections == 1


def test_the_jail_reaches_the_proxy_and_passes_the_exit_code_on(
    tmp_path: Path, attacker: Site, internal: Site
) -> None:
    public = attacker.add("/clip.mp4", b"video", "video/mp4")
    with egress_guard(Settings(temp_dir=tmp_path), policy=POLICY) as guard:
        argv, env = guard.wrap(["curl", "-sS", "-o", "-", "-w", " %{http_code}", public])
        assert _run(argv, env, guard).stdout == "video 200"
        argv, env = guard.wrap(["curl", "-sS", "-w", "%{http_code}", internal.url("/latest/meta-data/iam")])
        assert _run(argv, env, guard).stdout.endswith("403")
        argv, env = guard.wrap([sys.executable, "-c", "raise SystemExit(7)"])
        assert _run(argv, env, guard).returncode == 7
    assert internal.connections == 0


def test_jailed_children_run_with_nothing_between_them_and_their_parent(tmp_path: Path) -> None:
    with egress_guard(Settings(temp_dir=tmp_path), policy=POLICY) as guard:
        argv, env = guard.wrap([sys.executable, "-c", "import os; print(os.getppid())"])
        jailed = _run(argv, env, guard)
    # No relay process in the jail: the command is the runner's own child, and talks to the proxy itself.
    assert jailed.stdout.strip() == str(os.getpid())
