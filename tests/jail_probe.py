"""What a jailed child can see and reach, reported as JSON by a child started as ffmpeg or yt-dlp are.

`PROBE` is run as `python -c PROBE TARGETS` (no file of the test suite needs to be visible in the jail), where
TARGETS is {"sockets": {name: [address, hello]}, "files": {name: path}}: an address is a unix socket path
("@name" for an abstract one) or "host:port"; `hello` is sent on connecting and the first answer reported.
"""

from __future__ import annotations

PROBE = r"""
import json, os, socket, sys

targets = json.loads(sys.argv[1])

def reach(address, hello):
    if address.startswith("/") or address.startswith("@"):
        sock = socket.socket(socket.AF_UNIX)
        where = "\0" + address[1:] if address.startswith("@") else address
    else:
        host, port = address.rsplit(":", 1)
        sock, where = socket.socket(), (host, int(port))
    sock.settimeout(3)
    try:
        sock.connect(where)
        if not hello:
            return "connected"
        sock.sendall(hello.encode())
        return "connected: " + sock.recv(200).decode(errors="replace")
    except OSError as exc:
        return f"refused: {exc}"
    finally:
        sock.close()

def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as exc:
        return None

files = {name: read(path) for name, path in targets["files"].items()}
sockets = {}
for name, (address, hello) in targets["sockets"].items():
    if hello and "{password}" in hello:  # AUTH with the managed Redis's password, if the file gave it away
        hello = hello.replace("{password}", files.get("broker_password") or "unreadable")
    sockets[name] = reach(address, hello)
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "env": dict(os.environ),
    "cwd": os.getcwd(), "files": files, "sockets": sockets,
}))
"""
