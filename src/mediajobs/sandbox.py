"""What a child process may use: memory and CPU time (rlimits), network, environment, files and identity.

Children that parse strangers' input (ffmpeg, ffprobe, yt-dlp: `process.run(..., network=False)` or
`untrusted=True`) get a minimal environment — PATH, LANG/LC_ALL, HOME and TMPDIR in the job's temp dir, and
the proxy variables the egress jail hands them; never the worker's secrets. Inside a job (`Sandbox`, set by
the worker's runner) and where the worker is root, they also run as the sandbox uid (nobody) in a mount
namespace where only the job's own temp dir and the Python runtime are left of the shared directories (see
`confine`).

Network isolation uses a new, empty network namespace: the child sees only a loopback interface that is down,
so nothing it does can reach the host's network, the managed Redis's loopback port or an abstract unix socket.
That needs CAP_SYS_ADMIN (root, or a container allowed to make namespaces); where it is missing, children run
with the host's network and the other defences (protocol allowlists, the egress proxy) stand alone.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import site
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from stat import S_ISREG

from mediajobs.confine import SANDBOX_UID, Confinement

# The only variables a jailed child may be handed besides its own (the egress proxy's).
PROXY_VARIABLES = frozenset(
    {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}
)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def _nothing() -> tuple[Path, ...]:
    return ()


@dataclass(frozen=True)
class Sandbox:
    """Where a job's jailed children may look: `workdir()` (the job's temp dir, made on first use), nothing
    of `hidden` (the data dir, every job's temp root, local storage) but the directories `readable()` names
    at the time a child starts, which it may read (stored files a job reads in place)."""

    workdir: Callable[[], Path]
    hidden: tuple[Path, ...] = ()
    readable: Callable[[], tuple[Path, ...]] = _nothing


def _probe(confinement: Confinement) -> bool:
    try:
        done = subprocess.run(
            ["true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=confinement.prepare().enter,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@lru_cache(maxsize=1)
def netns_available() -> bool:
    """Whether this process may put children in a network namespace of their own."""
    return _probe(Confinement(network=False, landlock=False))


@lru_cache(maxsize=1)
def mounts_available() -> bool:
    """Whether this process may give children a mount namespace of their own (root, and no LSM refusing
    mount(2), as Docker's default AppArmor profile does) and the sandbox uid."""
    if os.geteuid() != 0:
        return False
    return _probe(Confinement(mounts=True, uid=SANDBOX_UID, landlock=False))


def child_env(home: Path | None, passed: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a jailed child: PATH, the locale, HOME/TMPDIR, and the proxy variables of
    `passed` (anything else in it is dropped, whoever put it there)."""
    env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH, "LANG": os.environ.get("LANG") or "C.UTF-8"}
    if "LC_ALL" in os.environ:
        env["LC_ALL"] = os.environ["LC_ALL"]
    if home is not None:
        env["HOME"] = env["TMPDIR"] = str(home)
    env.update({k: v for k, v in (passed or {}).items() if k in PROXY_VARIABLES})
    return env


@lru_cache(maxsize=1)
def runtime_paths() -> tuple[Path, ...]:
    """What a jailed Python child (yt-dlp) needs to see: this interpreter, its libraries and our package."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site.getsitepackages()}
    # Where mediajobs and yt-dlp are imported from (an editable install's source tree) — not every entry of
    # sys.path: the worker's own directory (`python -m` puts it first) may hold anything.
    for name in ("mediajobs", "yt_dlp"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            roots.add(str(Path(spec.origin).parent.parent))
    return tuple(Path(p) for p in sorted(roots) if os.path.isdir(p))


def hand_over(workdir: Path) -> None:
    """Make the job's temp dir the sandbox uid's, so its children can write where the worker prepared.

    A file with other links is left as it is: it may be a stored object linked in (local storage's `get_file`
    is a hard link), and giving it away would let the children write to the stored object itself.
    """
    for top, dirs, files in os.walk(workdir):
        for name in [top, *(os.path.join(top, n) for n in (*dirs, *files))]:
            st = os.lstat(name)
            if st.st_uid != SANDBOX_UID and not (S_ISREG(st.st_mode) and st.st_nlink > 1):
                os.chown(name, SANDBOX_UID, SANDBOX_UID, follow_symlinks=False)


def confinement(
    *, network: bool | int, untrusted: bool, sandbox: Sandbox | None, program: str, env_path: str
) -> tuple[Confinement, Path | None]:
    """How to confine one child, and the job's temp dir it may use (None outside a job)."""
    if network is False and not netns_available():
        network = True  # no namespaces here: the host's network, and the other defences stand alone
    if not untrusted or sandbox is None:
        return Confinement(network=network, landlock=untrusted), None
    workdir = sandbox.workdir()
    root = os.geteuid() == 0
    found = shutil.which(program, path=env_path)
    keep = runtime_paths() + ((Path(os.path.realpath(found)).parent,) if found else ()) + sandbox.readable()
    if root:
        hand_over(workdir)
    jail = Confinement(
        network=network,
        mounts=root and mounts_available(),
        workdir=workdir,
        hidden=sandbox.hidden,
        keep=keep,
        uid=SANDBOX_UID if root else None,
    )
    return jail, workdir
