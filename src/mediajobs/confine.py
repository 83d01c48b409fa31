"""Confining a child that parses strangers' input, done in the child between fork and exec (Linux).

    plan = Confinement(workdir=job_temp, hidden=(data_dir,), network=False, uid=SANDBOX_UID, ...)
    subprocess.Popen(argv, preexec_fn=plan.enter)

`enter` runs as the worker (root, for the namespaces) and in this order: the network (a new empty namespace,
or the egress jail's); a mount namespace of its own whose shared directories — where daemons keep their unix
sockets (/run, /tmp, ...), where other jobs and users keep their files (the data dir, /root, /home) — are
empty tmpfs mounts, with the job's own temp dir and the Python runtime bound back where they were; /proc
hidden last (the bind mounts above read /proc/self/fd); no new privileges; then the sandbox uid; then a
Landlock domain of its own, so that two jailed children never ptrace or signal each other although they share
that uid. Each step needs the ones before it: the mounts need root, so the uid goes last but one.

Everything the child calls is resolved before the fork (ctypes functions, paths): between fork and exec only
system calls run.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

# nobody/nogroup: present on every Debian and in the image; it owns no files a job could use.
SANDBOX_UID = SANDBOX_GID = 65534
# Where sockets and other people's files live. /proc is hidden last, after the mounts that need it.
SHARED_DIRS = (
    "/run",
    "/var/run",
    "/tmp",
    "/var/tmp",
    "/var/lib",
    "/dev/shm",
    "/dev/mqueue",
    "/root",
    "/home",
)

_CLONE_NEWNS, _CLONE_NEWNET = 0x00020000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION, _LANDLOCK_RULE_PATH_BENEATH = 1, 1
# ABI 6: no signals to, and no abstract unix sockets of, processes outside the domain.
_LANDLOCK_SCOPES = 0x1 | 0x2
# Filesystem rights: EXECUTE, WRITE_FILE, READ_FILE, READ_DIR, then ten ways to change a directory (ABI 1);
# REFER (2), TRUNCATE (3), IOCTL_DEV (5).
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_MAKE_CHAR, _FS_MAKE_BLOCK = 1 << 6, 1 << 11
_FS_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_FS_FILE_ONLY = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | (1 << 14) | (1 << 15)
# What every program may read (and run) besides the job's own files, and /dev for /dev/null and the like.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/var/cache")
KERNEL_DIRS = ("/proc", "/sys")


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    for version, bit in ((2, 1 << 13), (3, 1 << 14), (5, 1 << 15)):
        if abi >= version:
            rights |= bit
    return rights


_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    assert _libc is not None
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


@lru_cache(maxsize=1)
def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers (0: none)."""
    if _libc is None:
        return 0
    version = int(_libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION))
    return max(version, 0)


def _landlock_ruleset(abi: int, filesystem: bool) -> bytes | None:
    """struct landlock_ruleset_attr {handled_access_fs, handled_access_net, scoped}, as long as `abi` knows.

    Without `filesystem` the domain only separates (ptrace, and from ABI 6 signals and abstract sockets);
    ABI 1-5 have no scopes, and handling device-node creation alone still makes a domain.
    """
    if abi < 1:
        return None
    handled = _fs_rights(abi) if filesystem else (0 if abi >= 6 else _FS_MAKE_CHAR | _FS_MAKE_BLOCK)
    if abi >= 6:
        return struct.pack("QQQ", handled, 0, _LANDLOCK_SCOPES)
    return struct.pack("Q", handled)


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


@dataclass
class Confinement:
    """How one child is confined; `enter` applies it in the child (see the module's docstring).

    `network`: True keeps the worker's network, False gives a new empty namespace, an int is the descriptor
    of a namespace to enter (the egress jail). `mounts` (root only) makes the minimal filesystem view: the
    SHARED_DIRS and `hidden` become empty, `workdir` (read-write) and `keep` (read-only) are bound back where
    they are hidden. `uid`: the uid and gid to run as (None: the worker's). `landlock`: a Landlock domain of
    its own; with a `workdir`, one that also lets it open nothing but the SYSTEM_DIRS, KERNEL_DIRS and `keep`
    (to read and run), /dev, and `workdir` — the same view without root, or where mount(2) is refused.
    """

    network: bool | int = True
    mounts: bool = False
    workdir: Path | None = None
    hidden: tuple[Path, ...] = ()
    keep: tuple[Path, ...] = ()
    uid: int | None = None
    cwd: str | None = None
    landlock: bool = True
    _plan: list[tuple[str, str]] = field(default_factory=list, init=False)
    _ruleset: bytes | None = field(default=None, init=False)
    _rules: list[tuple[str, int]] = field(default_factory=list, init=False)

    def prepare(self) -> Confinement:
        """Work out everything `enter` will do, in the parent (no allocation-heavy work after the fork)."""
        hide = {os.path.realpath(d) for d in (*SHARED_DIRS, *map(str, self.hidden))}
        hide = {d for d in hide if d != "/" and os.path.isdir(d)}
        keeps = {os.path.realpath(p): "ro" for p in map(str, self.keep) if os.path.isdir(p)}
        if self.workdir is not None:
            keeps[os.path.realpath(self.workdir)] = "rw"
        plan: list[tuple[str, str]] = [("hide", d) for d in hide]
        plan += [(mode, p) for p, mode in keeps.items() if _under(p, hide)]
        # Ancestors first: a kept path inside a hidden one inside a kept one (a CI clone under /tmp with
        # its data dir inside) is rebuilt level by level.
        plan.sort(key=lambda step: (step[1].count("/"), step[0] != "hide"))
        self._plan = plan if self.mounts else []
        abi = landlock_abi() if self.landlock else 0
        filesystem = self.workdir is not None
        self._ruleset = _landlock_ruleset(abi, filesystem)
        if self._ruleset is not None and filesystem:
            everything = _fs_rights(abi)
            readable = (*SYSTEM_DIRS, *KERNEL_DIRS, *map(str, self.keep))
            rules = [(p, _FS_READ) for p in readable] + [("/dev", _FS_READ | _FS_WRITE_FILE | (1 << 15))]
            rules.append((str(self.workdir), everything))
            self._rules = [(p, access & everything) for p, access in rules if os.path.exists(p)]
        if self.cwd is None:
            self.cwd = str(self.workdir) if self.workdir is not None else None
        return self

    def enter(self) -> None:
        """Apply the confinement to the calling process (the child, before exec)."""
        assert _libc is not None
        if isinstance(self.network, bool):
            if not self.network:
                _check(_libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        else:
            _check(_libc.setns(self.network, _CLONE_NEWNET), "setns(CLONE_NEWNET)")
        if self._plan:
            self._mount_view()
        if self.cwd is not None:
            os.chdir(self.cwd)  # resolved again in the new view: the old cwd could lead to hidden places
        if self.uid is not None or self._ruleset is not None:
            _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        # Made while still the worker's uid: the rules' paths may lie where the sandbox uid cannot look.
        ruleset = self._landlock_domain() if self._ruleset is not None else None
        if self.uid is not None:
            os.setgroups([])
            os.setgid(self.uid)
            os.setuid(self.uid)
        if ruleset is not None:
            try:
                _check(_libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
            finally:
                os.close(ruleset)

    def _landlock_domain(self) -> int:
        assert _libc is not None and self._ruleset is not None
        ruleset = int(_libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, self._ruleset, len(self._ruleset), 0))
        if ruleset < 0:
            _check(-1, "landlock_create_ruleset")
        try:
            for path, access in self._rules:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                try:
                    if not os.path.isdir(path):
                        access &= _FS_FILE_ONLY
                    rule = struct.pack("=Qi", access, fd)
                    result = _libc.syscall(
                        _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, rule, 0
                    )
                    _check(result, f"landlock_add_rule {path}")
                finally:
                    os.close(fd)
        except BaseException:
            os.close(ruleset)
            raise
        return ruleset

    def _mount_view(self) -> None:
        _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")  # type: ignore[union-attr]
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        # Handles on what is bound back, taken in this namespace before anything is hidden.
        kept = [path for kind, path in self._plan if kind != "hide"]
        handles = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in kept}
        try:
            for kind, path in self._plan:
                if kind == "hide":
                    if os.path.isdir(path):
                        flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
                        _mount("tmpfs", path, "tmpfs", flags, "size=64k,mode=755")
                    continue
                os.makedirs(path, exist_ok=True)
                _mount(f"/proc/self/fd/{handles[path]}", path, None, _MS_BIND | _MS_REC)
                if kind == "ro":
                    _mount(None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
        finally:
            for fd in handles.values():
                os.close(fd)
        hidden = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        _mount("tmpfs", "/proc", "tmpfs", hidden, "size=4k,mode=555")
