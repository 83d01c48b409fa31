"""The host harness cleans up after itself, even after a run that was killed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from mediajobs.testing.servers import wait_for
from mediajobs.testing.stacks import CHECKOUT, base_env
from tests.hosts.conftest import require_hosts
from tests.hosts.system import ROOT, cgroup_root, ip, sweep_stale

# A run that builds a host with a process in it, says what it made, and waits to be killed.
KILLED_RUN = """
import sys, subprocess, time
from tests.hosts.netns import Network
network = Network.create()
host = network.add_host("victim")
sleeper = subprocess.Popen(host.argv(["sleep", "300"]))
time.sleep(0.5)
print(network.tag, sleeper.pid, flush=True)
time.sleep(300)
"""


def leftovers(tag: str) -> list[str]:
    found = [n for n in ip("netns", "list").split() if n.startswith(tag)]
    found += [line for line in ip("-o", "link", "show").splitlines() if f": {tag}" in line]
    if Path("/etc/netns").is_dir():
        found += [str(p) for p in Path("/etc/netns").glob(f"{tag}*")]
    cgroup = cgroup_root()
    if cgroup is not None:
        found += [str(p) for p in cgroup.glob(f"{tag}*")]
    found += [str(p) for p in ROOT.glob(f"{tag}*")]
    return found


def test_a_killed_run_leaves_nothing_once_the_next_run_starts() -> None:
    require_hosts()
    run = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN], stdout=subprocess.PIPE, text=True, env=base_env(), cwd=CHECKOUT
    )
    assert run.stdout is not None
    tag, sleeper = run.stdout.readline().split()
    assert leftovers(tag), "the run made nothing"
    run.send_signal(signal.SIGKILL)  # no atexit, no finally: everything it made stays
    run.wait(timeout=10)
    run.stdout.close()
    assert leftovers(tag) and Path(f"/proc/{sleeper}").exists()

    assert tag in sweep_stale()
    assert leftovers(tag) == []
    wait_for(lambda: not Path(f"/proc/{sleeper}").exists(), timeout_s=5, message="its process to be gone")
