"""Hosts on one machine: network namespaces on a private bridge, each with its own directories and cgroup.

    network = Network.create()             # a bridge on a free 10.213.X.0/24, the test process at .1
    api = network.add_host("api")          # namespace, veth pair, address .11, /etc/netns/.../hosts
    api.argv(["python", "-m", ...])         # ip netns exec NS python enter.py ... -- python -m ...
    api.set_link(up=False)                  # unplug its cable (the far end does not notice)
    api.kill_all()                          # SIGKILL everything in it at once (its cgroup)
    network.destroy()                       # also at exit, and for runs that died: see sweep_stale()

Nothing leaves a host: it has no default route and no address outside the bridge's subnet (IPv6 is off),
and the machine does not forward. Neighbour entries are static, so a host whose link is down is a black hole
(its packets vanish, nobody gets "no route to host"), as a pulled cable or a dead switch port looks.
Every name starts with `mjh<pid><letter>`: a later run removes what a killed run left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.hosts.system import PREFIX, ROOT, HostsError, cgroup_root, ip, kill_cgroup, started, sweep_stale

ENTER = Path(__file__).with_name("enter.py")
REPO = Path(__file__).resolve().parents[2]
SUBNET = "10.213"
_letters: list[str] = []


def _sysctl_off(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.write_text("1")


class Host:
    """One network namespace on the bridge, with its directories, hosts file and cgroup."""

    def __init__(self, network: Network, name: str, index: int, aliases: tuple[str, ...] = ()) -> None:
        self.network = network
        self.name = name
        self.aliases = aliases
        self.address = f"{network.prefix}.{10 + index}"
        self.netns = f"{network.tag}-{name}"
        self.veth = f"{network.tag}{index:02d}"
        self.root = network.root / name
        self.data = self.root / "data"
        self.tmp = self.root / "tmp"
        self.cgroup = network.cgroup / self.netns if network.cgroup else None
        self.pgids: set[int] = set()  # where there is no cgroup v2: what kill_all signals
        # Run before the host is torn down, whatever the path to it: clean stops (PostgreSQL's, whose
        # shared memory in /dev/shm a SIGKILL would leave behind).
        self.on_destroy: list[Callable[[], None]] = []
        self.mac = ""
        # Compose secrets: bound at /run/secrets in every process of the host (see enter.py).
        self.secrets: Path | None = None

    def _build(self) -> None:
        for directory in (self.root, self.data):
            directory.mkdir(mode=0o755, parents=True)
        self.tmp.mkdir()
        self.tmp.chmod(0o1777)  # as /tmp is: services running as other users (postgres) write there
        if self.cgroup is not None:
            self.cgroup.mkdir()
        peer = f"{self.veth}p"
        ip("netns", "add", self.netns)
        ip("link", "add", self.veth, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", self.netns)
        ip("-n", self.netns, "link", "set", peer, "name", "eth0")
        self.sysctl("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        ip("-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        ip("-n", self.netns, "link", "set", "lo", "up")
        ip("-n", self.netns, "link", "set", "eth0", "up")
        _sysctl_off(Path(f"/proc/sys/net/ipv6/conf/{self.veth}/disable_ipv6"))
        ip("link", "set", self.veth, "master", self.network.bridge)
        ip("link", "set", self.veth, "up")
        found = re.search(r"link/ether ([0-9a-f:]+)", ip("-n", self.netns, "-o", "link", "show", "eth0"))
        assert found, "eth0 has no MAC address"
        self.mac = found[1]

    def sysctl(self, *settings: str) -> None:
        if Path("/proc/sys/net/ipv6").exists():
            subprocess.run(
                ["ip", "netns", "exec", self.netns, "sysctl", "-q", "-w", *settings],
                check=True,
                capture_output=True,
                timeout=30,
            )

    def argv(self, command: list[str], *, cwd: Path | None = None, cpus: str | None = None) -> list[str]:
        """`command` as a process of this host (see enter.py)."""
        launcher = ["ip", "netns", "exec", self.netns, sys.executable, "-I", str(ENTER)]
        launcher += ["--hostname", self.name, "--tmp", str(self.tmp), "--cwd", str(cwd or self.data)]
        if self.cgroup is not None:
            # `ip netns exec` mounts the namespace's own /sys over /sys, hiding the cgroup hierarchy; this
            # process's root still shows the machine's mounts.
            launcher += ["--cgroup", f"/proc/{os.getpid()}/root{self.cgroup}"]
        if cpus:
            launcher += ["--cpus", cpus]
        if self.secrets is not None:
            launcher += ["--secrets", str(self.secrets)]
        for other in self.network.hidden_from(self):
            launcher += ["--hide", str(other)]
        for shared in (REPO, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()):
            if shared.is_relative_to(
                "/tmp"
            ):  # the code every host runs, not data: shared as a machine's disk
                launcher += ["--keep", str(shared)]
        return [*launcher, "--", *command]

    def run(
        self, command: list[str], *, env: dict[str, str] | None = None, timeout_s: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to its end in this host; raises with its output when it fails."""
        done = subprocess.run(self.argv(command), env=env, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise HostsError(
                f"{command} on {self.name} exited {done.returncode}: {done.stderr or done.stdout}"
            )
        return done

    def set_link(self, *, up: bool) -> None:
        """Plug or unplug the host's cable at the bridge; inside, eth0 stays up and nothing is told."""
        ip("link", "set", self.veth, "up" if up else "down")

    def pids(self) -> list[int]:
        if self.cgroup is None:
            return [int(p) for p in ip("netns", "pids", self.netns, check=False).split()]
        return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]

    def kill_all(self) -> None:
        """SIGKILL every process of the host at once, as a machine that loses power."""
        if self.cgroup is not None:
            (self.cgroup / "cgroup.kill").write_text("1")
        else:
            for pgid in self.pgids:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.02)

    def addresses(self) -> list[str]:
        """Every address of every interface in the host, as `ip -o addr` spells them (a.b.c.d/n)."""
        lines = ip("-n", self.netns, "-o", "addr", "show").splitlines()
        return [line.split()[3] for line in lines]

    def routes(self) -> list[str]:
        lines = ip("-n", self.netns, "route", "show", "table", "all").splitlines()
        return [line for line in lines if line.strip() and " table local " not in f" {line} "]

    def _destroy(self) -> None:
        for stop in self.on_destroy:
            with contextlib.suppress(Exception):
                stop()
        kill_cgroup(self.cgroup)
        for pgid in self.pgids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        ip("netns", "del", self.netns, check=False)
        ip("link", "del", self.veth, check=False)
        shutil.rmtree(Path("/etc/netns") / self.netns, ignore_errors=True)


class Network:
    """A bridge with hosts on it; the test process has the subnet's .1 on the bridge."""

    def __init__(self, tag: str, prefix: str) -> None:
        self.tag = tag
        self.prefix = prefix
        self.bridge = f"{tag}br"
        self.root = ROOT / tag
        cgroup = cgroup_root()
        self.cgroup = cgroup
        self.hosts: dict[str, Host] = {}
        self._destroyed = False

    @property
    def subnet(self) -> str:
        return f"{self.prefix}.0/24"

    @property
    def gateway(self) -> str:
        """The test process's own address on the bridge (no host routes through it: nothing forwards)."""
        return f"{self.prefix}.1"

    @classmethod
    def create(cls) -> Network:
        sweep_stale()
        ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        ROOT.chmod(0o755)
        with open(ROOT / ".lock", "w") as lock:
            # Two runs choosing a subnet at once would choose the same one.
            fcntl.flock(lock, fcntl.LOCK_EX)
            tag = cls._free_tag()
            network = cls(tag, cls._free_prefix())
            atexit.register(network.destroy)
            try:
                network._build()
            except BaseException:
                network.destroy()
                raise
        return network

    @staticmethod
    def _free_tag() -> str:
        taken = {p.name for p in ROOT.glob(f"{PREFIX}{os.getpid()}*")}
        for letter in "abcdefghijklmnopqrstuvwxyz":
            tag = f"{PREFIX}{os.getpid()}{letter}"
            if tag not in taken and letter not in _letters:
                _letters.append(letter)
                return tag
        raise HostsError("more than 26 networks in one process")

    @staticmethod
    def _free_prefix() -> str:
        used = ip("-4", "-o", "addr", "show") + ip("-4", "route", "show", "table", "all")
        for third in range(1, 255):
            prefix = f"{SUBNET}.{third}"
            if f"{prefix}." not in used:
                return prefix
        raise HostsError(f"no free /24 left in {SUBNET}.0.0/16")

    def _build(self) -> None:
        self.root.mkdir(mode=0o755)
        (self.root / "owner").write_text(f"{os.getpid()} {started(os.getpid())}\n")
        ip("link", "add", self.bridge, "type", "bridge")
        _sysctl_off(Path(f"/proc/sys/net/ipv6/conf/{self.bridge}/disable_ipv6"))
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, name: str, *, aliases: tuple[str, ...] = ()) -> Host:
        if name in self.hosts:
            raise HostsError(f"there is a host named {name} already")
        host = Host(self, name, len(self.hosts) + 1, aliases)
        self.hosts[name] = host
        host._build()
        for other in self.hosts.values():
            if other is not host:
                ip("-n", host.netns, "neigh", "replace", other.address, "lladdr", other.mac, "dev", "eth0",
                   "nud", "permanent")  # fmt: skip
                ip("-n", other.netns, "neigh", "replace", host.address, "lladdr", host.mac, "dev", "eth0",
                   "nud", "permanent")  # fmt: skip
        self._write_hosts_files()
        return host

    def _write_hosts_files(self) -> None:
        lines = ["127.0.0.1 localhost"]
        lines += [" ".join([h.address, h.name, *h.aliases]) for h in self.hosts.values()]
        text = "\n".join(lines) + "\n"
        for host in self.hosts.values():
            directory = Path("/etc/netns") / host.netns
            directory.mkdir(parents=True, exist_ok=True)
            # Rewritten in place: a running process's /etc/hosts is a bind mount of this very inode.
            with open(directory / "hosts", "w") as f:
                f.write(text)

    def hidden_from(self, host: Host) -> list[Path]:
        """What `host` must not see: the other hosts' directories here and other runs' trees."""
        others = [h.root for h in self.hosts.values() if h is not host]
        runs = [p for p in ROOT.glob(f"{PREFIX}*") if p.is_dir() and p != self.root]
        return others + runs + [self.root / "outside"]

    @property
    def outside(self) -> Path:
        """A directory of the test process's own, hidden from every host."""
        path = self.root / "outside"
        path.mkdir(exist_ok=True)
        return path

    def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        for host in reversed(list(self.hosts.values())):
            host._destroy()
        ip("link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
