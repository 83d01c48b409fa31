"""Become a process of one host, then exec the command: `ip netns exec NS python enter.py [options] -- argv`.

`ip netns exec` has already put us in the host's network namespace, in a mount namespace of our own (a slave
of the machine's, so nothing mounted here leaks out) with `/etc/netns/NS/hosts` over `/etc/hosts`. What is
left to make a host of it, done here before exec so the command itself runs unchanged:

- its cgroup (so that killing the host kills every process in it, nested namespaces included);
- its hostname (a UTS namespace of its own: job rows and Celery name workers by hostname);
- its filesystem view: the other hosts' directories are hidden under empty read-only tmpfs mounts and its own
  temp directory is bind-mounted over `/tmp`, so a path written on one host does not exist on another;
- its compose secrets: a directory bound read-only at `/run/secrets` (over an empty `/run`), as a container
  sees them;
- optionally the CPUs it may run on.

A standalone script (no imports from the test suite), run with `python -I` to start fast.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import sys

CLONE_NEWUTS = 0x04000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--cgroup", help="cgroup v2 directory to join")
    parser.add_argument("--tmp", help="directory bind-mounted over /tmp")
    parser.add_argument("--hide", action="append", default=[], help="directory to hide (repeatable)")
    parser.add_argument(
        "--keep", action="append", default=[], help="directory under /tmp to keep (repeatable)"
    )
    parser.add_argument("--secrets", help="directory bound read-only at /run/secrets")
    parser.add_argument("--cpus", help="CPU list, e.g. 0 or 0,1")
    parser.add_argument("--cwd")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("no command given")
    if options.cgroup:
        with open(os.path.join(options.cgroup, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
    _check(_libc.unshare(CLONE_NEWUTS), "unshare(CLONE_NEWUTS)")
    socket.sethostname(options.hostname)
    for directory in options.hide:
        if os.path.isdir(directory):
            mount(
                "none", directory, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555"
            )
    if options.tmp:
        # The repository and its virtualenv may live under /tmp (a CI clone): they stay visible, bound back
        # over the host's own /tmp from descriptors opened before it was covered.
        kept = [(path, os.open(path, os.O_PATH)) for path in options.keep if os.path.isdir(path)]
        mount(options.tmp, "/tmp", None, MS_BIND | MS_REC)
        for path, fd in kept:
            os.makedirs(path, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            os.close(fd)
    if options.secrets:
        mount("none", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0755")
        os.mkdir("/run/secrets")
        mount(options.secrets, "/run/secrets", None, MS_BIND)
        mount("none", "/run/secrets", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    if options.cpus:
        os.sched_setaffinity(0, {int(c) for c in options.cpus.split(",")})
    if options.cwd:
        os.chdir(options.cwd)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
