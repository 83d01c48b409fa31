"""Run a command in a network namespace whose only way out is the egress proxy.

    unshare --net -- python -m mediajobs.egress.jail --socket PATH --port N -- yt-dlp ...

Inside the fresh namespace there is nothing but a loopback interface. The jail brings it up, listens on
127.0.0.1:N and carries each connection to the proxy's Unix socket (a filesystem path, which works across
network namespaces), then runs the command as its child and exits with its code. A tool that ignores proxy
settings finds no route anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType

_PR_SET_PDEATHSIG = 1
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
CHUNK = 1 << 20


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def loopback_up() -> None:
    """Bring `lo` up in this namespace (an ioctl, so no dependency on iproute2)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _carry(source: socket.socket, dest: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            dest.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dest.shutdown(socket.SHUT_WR)


def _bridge(client: socket.socket, socket_path: str) -> None:
    with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as proxy:
        try:
            proxy.connect(socket_path)
        except OSError:
            return
        back = threading.Thread(target=_carry, args=(proxy, client), daemon=True)
        back.start()
        _carry(client, proxy)
        back.join()


def _serve(listener: socket.socket, socket_path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_bridge, args=(client, socket_path), daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mediajobs.egress.jail")
    parser.add_argument("--socket", required=True, help="the egress proxy's Unix socket")
    parser.add_argument("--port", required=True, type=int, help="where to offer the proxy inside")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    _die_with_parent()
    loopback_up()
    listener = socket.create_server(("127.0.0.1", args.port))
    threading.Thread(target=_serve, args=(listener, args.socket), daemon=True).start()
    # Same process group as the jail: the runner's group kill reaches the command too.
    child = subprocess.Popen(command, preexec_fn=_die_with_parent)

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    code = child.wait()
    listener.close()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
