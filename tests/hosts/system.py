"""What the harness asks of the machine: `ip`, cgroups, and removing what runs that died left behind.

Every name the harness makes (namespaces, links, cgroups, /etc/netns entries, directories under ROOT)
starts with `mjh<pid><letter>`, and ROOT/<tag>/owner records the process's start time: a tag whose process
is gone (or is another process by now) is stale.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "mjh"
ROOT = Path("/var/tmp/mediajobs-hosts")
_TAG = re.compile(rf"^{PREFIX}(\d+)([a-z])")


class HostsError(RuntimeError):
    """An `ip` command (or the kernel) refused to build or change a host."""


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise HostsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why this machine cannot make hosts (None when it can)."""
    if sys.platform != "linux":
        return "hosts are Linux network namespaces; this is not Linux"
    if os.geteuid() != 0:
        return "making network namespaces, veth pairs and a bridge needs root; run the tests as root"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        ip("netns", "add", probe)
    except (HostsError, OSError) as exc:
        return f"`ip netns add` is refused here: {exc}"
    ip("netns", "del", probe, check=False)
    return None


def cgroup_root() -> Path | None:
    """A cgroup v2 hierarchy to put hosts in (cgroup.kill kills a host at once), if one is mounted."""
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2" and (Path(fields[1]) / "cgroup.procs").exists():
                return Path(fields[1])
    return None


def started(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _stale(tag: str) -> bool:
    match = _TAG.match(tag)
    if match is None:
        return False
    pid = int(match[1])
    since = started(pid)
    if since is None:
        return True
    owner = ROOT / tag / "owner"
    with contextlib.suppress(OSError):
        return owner.read_text().split()[1] != since
    return False


def sweep_stale() -> list[str]:
    """Remove namespaces, links, cgroups, hosts files and directories of runs whose process is gone."""
    names = {line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()}
    links = {m[1] for m in re.finditer(r"^\d+: ([^:@]+)", ip("-o", "link", "show"), re.M)}
    etc = {p.name for p in Path("/etc/netns").glob(f"{PREFIX}*")} if Path("/etc/netns").is_dir() else set()
    cgroup = cgroup_root()
    groups = {p.name for p in cgroup.glob(f"{PREFIX}*")} if cgroup else set()
    dirs = {p.name for p in ROOT.glob(f"{PREFIX}*")} if ROOT.is_dir() else set()
    tags = {m[0] for n in names | links | etc | groups | dirs if (m := _TAG.match(n))}
    removed = []
    for tag in sorted(t for t in tags if _stale(t)):
        for group in sorted(g for g in groups if g.startswith(tag)):
            kill_cgroup(cgroup / group if cgroup else None)
        for name in sorted(n for n in names if n.startswith(tag)):
            ip("netns", "del", name, check=False)
        for link in sorted(n for n in links if n.startswith(tag)):
            ip("link", "del", link, check=False)
        for entry in sorted(e for e in etc if e.startswith(tag)):
            shutil.rmtree(Path("/etc/netns") / entry, ignore_errors=True)
        shutil.rmtree(ROOT / tag, ignore_errors=True)
        removed.append(tag)
    return removed


def kill_cgroup(group: Path | None, timeout_s: float = 10.0) -> None:
    if group is None or not group.is_dir():
        return
    with contextlib.suppress(OSError):
        (group / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if not (group / "cgroup.procs").read_text().strip():
                break
        except OSError:
            break
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        group.rmdir()
