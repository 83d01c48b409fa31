"""A network namespace whose only way out is the egress proxy.

    jail = Jail.make(port)            # in the worker: a fresh namespace with a listener on 127.0.0.1:port
    proxy.serve(jail.listener)        # the proxy answers there directly
    process.run(["yt-dlp", ...], network=jail.namespace_fd)   # the child enters it before exec

unshare(2) with CLONE_NEWNET moves only the calling thread, so a short-lived thread of the worker makes the
namespace: it brings the namespace's loopback up, opens a listening socket on 127.0.0.1:port there and a
handle on the namespace, and ends. A socket stays in the namespace it was made in whoever holds it, so the
proxy's event loop accepts the jailed children's connections itself: no relay process, no second copy of
every byte.
Children enter it between fork and exec (setns on the handle, see `mediajobs.confine`), so the command is the
runner's own child (no helper process; the pid, process group and parent-death signal are the command's own).
Inside there is nothing but that loopback: a tool that ignores the proxy settings finds no route anywhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import threading
from dataclasses import dataclass

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def _unshare_network() -> None:
    """Move the calling thread (only) into a new, empty network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare(CLONE_NEWNET): {os.strerror(errno)}")


def loopback_up() -> None:
    """Bring `lo` up in this thread's namespace (an ioctl, so no dependency on iproute2)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


@dataclass
class Jail:
    """A network namespace held open by `namespace_fd`, with the proxy's listener inside."""

    listener: socket.socket
    namespace_fd: int

    @classmethod
    def make(cls, port: int) -> Jail:
        """A new namespace whose 127.0.0.1:`port` is `listener` (raises OSError where that is not allowed)."""
        made: list[Jail | BaseException] = []

        def build() -> None:
            # Everything here runs in the new namespace; the thread then ends and nothing else ever does.
            try:
                _unshare_network()
                loopback_up()
                path = f"/proc/self/task/{threading.get_native_id()}/ns/net"
                namespace_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    listener = socket.create_server(("127.0.0.1", port), backlog=64)
                except BaseException:
                    os.close(namespace_fd)
                    raise
                made.append(cls(listener, namespace_fd))
            except BaseException as exc:
                made.append(exc)

        thread = threading.Thread(target=build, name="egress-jail", daemon=True)
        thread.start()
        thread.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        return made[0]

    def close(self) -> None:
        """Let the namespace go (the kernel frees it once the last process in it has ended)."""
        self.listener.close()
        with contextlib.suppress(OSError):
            os.close(self.namespace_fd)
