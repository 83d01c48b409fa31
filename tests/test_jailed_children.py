"""Children that parse strangers' input hold no secrets and reach no broker (issue 17, item 3).

Seen before: during an import yt-dlp ran as uid 0 with every variable of the worker (API keys, database and
broker URLs, AWS keys), ffmpeg and ffprobe children got the same environment, and from inside the import's
network namespace the managed Redis's socket answered `AUTH <password>` / `PING`; other unix sockets answered
too. Each test here looks from inside: a probe started exactly as the worker starts ffmpeg and ffprobe
(`process.run(..., network=False)` in a job) or yt-dlp (through the egress guard), and the real yt-dlp of a
stalled import, entered with its own namespaces and uid.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediajobs import confine, process, sandbox
from mediajobs.confine import SANDBOX_UID
from mediajobs.sandbox import Sandbox
from mediajobs.storage.backends.local import LocalStorage
from mediajobs.testing.servers import PostgresServer, wait_for
from mediajobs.testing.up import Up
from tests.egress.sites import running
from tests.jail_probe import PROBE
from tests.stacks import KINDS

API_KEY = "jail-test-api-key-0123456789"
AWS_SECRET = "jail-test-aws-secret-abcdef"
SECRETS = (API_KEY, AWS_SECRET)
ALLOWED_VARIABLES = {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR"}
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
PROXY_VARIABLES |= {v.upper() for v in PROXY_VARIABLES}
AUTH = {"Authorization": f"Bearer {API_KEY}"}
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox uid and namespaces need a root worker")


class Listener:
    """A unix socket server answering "hello" to every connection, counting them."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        if not address.startswith("@"):
            os.chmod(address, 0o777)  # as PostgreSQL's socket is: anyone may connect
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn, contextlib.suppress(OSError):  # the client may be gone already
                conn.sendall(b"hello")

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """`mediajobs up` with its managed Redis on a socket in the data dir, and secrets in its environment."""
    stack = Up(
        tmp_path_factory.mktemp("jail") / "up",
        MEDIAJOBS_API_KEYS=API_KEY,
        MEDIAJOBS_KIND_MODULES=KINDS,
        AWS_SECRET_ACCESS_KEY=AWS_SECRET,
        MEDIAJOBS_IMPORT_PUBLIC_CIDRS="127.0.0.2/32",
        MEDIAJOBS_IMPORT_ALLOWED_PORTS="*",
    )
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def targets(
    up: Up, postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Every socket a jailed child must not reach, and files it must not read."""
    broker = up.data_dir / "redis"
    assert (broker / "redis.sock").exists(), "the managed Redis listens on a socket in the data dir"
    listeners = [
        Listener(str(tmp_path_factory.mktemp("sock") / "test.sock")),
        Listener(f"/run/mediajobs-jail-test-{os.getpid()}.sock"),
        Listener(f"@mediajobs-jail-test-{os.getpid()}"),
    ]
    sockets = {
        "managed_redis": [str(broker / "redis.sock"), "AUTH {password}\r\nPING\r\n"],
        "postgresql": [f"{postgres_server.directory}/.s.PGSQL.{postgres_server.port}", ""],
        "tmp_socket": [listeners[0].address, ""],
        "run_socket": [listeners[1].address, ""],
        "abstract_socket": [listeners[2].address, ""],
        "api_loopback": [f"127.0.0.1:{up.port}", "GET /healthz HTTP/1.0\r\n\r\n"],
    }
    system_postgres = Path("/var/run/postgresql")
    for found in sorted(system_postgres.glob(".s.PGSQL.*")) if system_postgres.is_dir() else []:
        if found.is_socket():
            sockets[f"system_{found.name}"] = [str(found), ""]
    files = {"broker_password": str(broker / "password"), "database": str(up.data_dir / "mediajobs.db")}
    yield {"sockets": sockets, "files": files}
    for listener in listeners:
        listener.close()


def probe_outside(targets: dict[str, Any]) -> dict[str, Any]:
    """The probe run by the test itself: every target is there to be reached (a fair witness)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(targets)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def run_probe_job(up: Up, targets: dict[str, Any], *, through_egress_guard: bool) -> dict[str, Any]:
    params = {"targets": targets, "through_egress_guard": through_egress_guard}
    with httpx.Client(base_url=up.api_url, headers=AUTH, timeout=10) as api:
        job = api.post("/api/v1/jobs", json={"kind": "tests.jail_probe", "params": params}).json()

        def ended() -> dict[str, Any] | None:
            current = api.get(f"/api/v1/jobs/{job['id']}").json()
            return current if current["state"] in ("succeeded", "failed") else None

        done = wait_for(ended, timeout_s=60, message="the probe job to end")
    assert done["state"] == "succeeded", done["error"]
    return done["result"]  # type: ignore[no-any-return]


def assert_jailed(seen: dict[str, Any], targets: dict[str, Any], *, proxy: bool) -> None:
    env = seen["env"]
    allowed = ALLOWED_VARIABLES | (PROXY_VARIABLES if proxy else set())
    assert set(env) <= allowed, f"variables a jailed child must not have: {set(env) - allowed}"
    assert not [v for v in env.values() if any(secret in v for secret in SECRETS)]
    assert env["HOME"] == env["TMPDIR"] and "/job-" in env["HOME"], env
    if proxy:
        assert env["http_proxy"].startswith("http://127.0.0.1:"), env
    if os.geteuid() == 0:
        assert (seen["uid"], seen["gid"], seen["groups"]) == (SANDBOX_UID, SANDBOX_UID, [])
    reached = {name: answer for name, answer in seen["sockets"].items() if not answer.startswith("refused")}
    assert not reached, f"reached from inside the jail: {reached}"
    assert seen["files"] == dict.fromkeys(targets["files"]), "read files of the data dir"


def test_the_probe_reaches_every_target_from_outside(targets: dict[str, Any]) -> None:
    seen = probe_outside(targets)
    assert seen["sockets"]["managed_redis"].startswith("connected: +OK\r\n+PONG"), seen["sockets"]
    refused = {name: answer for name, answer in seen["sockets"].items() if answer.startswith("refused")}
    assert not refused, refused
    assert all(seen["files"].values())


@root_only
def test_ffmpeg_children_hold_no_secrets_and_reach_no_socket(up: Up, targets: dict[str, Any]) -> None:
    seen = run_probe_job(up, targets, through_egress_guard=False)

    assert_jailed(seen, targets, proxy=False)
    assert seen["cwd"] == seen["env"]["HOME"]


@root_only
def test_yt_dlp_children_hold_no_secrets_and_reach_only_the_proxy(up: Up, targets: dict[str, Any]) -> None:
    seen = run_probe_job(up, targets, through_egress_guard=True)

    assert_jailed(seen, targets, proxy=True)


@root_only
def test_the_yt_dlp_of_a_stalled_import_is_jailed(up: Up, targets: dict[str, Any]) -> None:
    """The real import: yt-dlp stalls on a slow source while the test looks at it and probes from its jail."""
    with running("127.0.0.2") as site, httpx.Client(base_url=up.api_url, headers=AUTH, timeout=10) as api:
        url = site.add("/slow.mp4", _drip, "video/mp4")
        created = api.post("/api/v1/media/imports", json={"url": url, "pipeline": []})
        assert created.status_code == 202, created.text
        pid = wait_for(lambda: _yt_dlp_pid(up), timeout_s=30, message="yt-dlp to start")
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            variables = dict(item.decode().split("=", 1) for item in environ if item)
            status = Path(f"/proc/{pid}/status").read_text()
            uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
            inside = _probe_inside(pid, targets)
        finally:
            api.post(f"/api/v1/jobs/{created.json()['job']['id']}/cancel")
    assert set(variables) <= ALLOWED_VARIABLES | PROXY_VARIABLES, set(variables)
    assert not [v for v in variables.values() if any(secret in v for secret in SECRETS)]
    assert uids == [str(SANDBOX_UID)] * 4
    assert_jailed(inside, targets, proxy=True)


def _drip() -> Iterator[bytes]:
    for _ in range(600):
        yield b"\0" * 512
        time.sleep(0.1)


def _yt_dlp_pid(up: Up) -> int | None:
    for pid in up.pids():
        with contextlib.suppress(OSError):
            if b"ytdlp_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


def _probe_inside(pid: int, targets: dict[str, Any]) -> dict[str, Any]:
    """The probe in yt-dlp's own network and mount namespaces, as its uid, with its environment."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in environ if item)
    uid = str(Path(f"/proc/{pid}").stat().st_uid)
    argv = ["nsenter", "-t", str(pid), "--net", "--mount", "-S", uid, "-G", uid, "--"]
    argv += [sys.executable, "-c", PROBE, json.dumps(targets)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_child_env_keeps_only_the_locale_the_path_and_the_proxy(tmp_path: Path) -> None:
    passed = {"MEDIAJOBS_API_KEYS": API_KEY, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "https_proxy": "http://p:1"}

    env = sandbox.child_env(tmp_path, passed)

    assert set(env) == {"PATH", "LANG", "HOME", "TMPDIR", "https_proxy"} | ({"LC_ALL"} & set(os.environ))
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)


@pytest.mark.skipif(confine.landlock_abi() < 1, reason="this kernel has no Landlock")
@pytest.mark.skipif(os.geteuid() == 0 and not Path("/usr/bin/python3").exists(), reason="no system Python")
def test_where_mount_namespaces_are_refused_landlock_keeps_the_data_dir_out_of_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As under Docker's default AppArmor profile (mount refused) or for a worker that is not root."""
    monkeypatch.setattr(sandbox, "mounts_available", lambda: False)
    data = tmp_path / "data"
    (data / "redis").mkdir(parents=True)
    (data / "redis" / "password").write_text("broker-password\n")
    workdir = data / "tmp" / "job-1"
    workdir.mkdir(parents=True)
    (workdir / "source.mp4").write_bytes(b"media")
    targets = {"sockets": {}, "files": {"broker_password": str(data / "redis" / "password")}}
    write_outside = f"open({str(data / 'planted')!r}, 'w')"

    # Without a mount namespace the sandbox uid sees the machine's permissions: this machine's own Python may
    # sit under /root, where it may not look; the system's Python is enough for the probe.
    python = sys.executable if os.geteuid() != 0 else "/usr/bin/python3"
    with process.cancellable(None, None, Sandbox(workdir=lambda: workdir, hidden=(data,))):
        probe = [python, "-c", PROBE, json.dumps(targets)]
        seen = json.loads(process.run(probe, network=False, capture_stdout=True).stdout)
        planted = process.run([python, "-c", write_outside], network=False, check=False)
        mine = process.run(["cat", "source.mp4"], network=False, capture_stdout=True)

    assert seen["files"] == {"broker_password": None}
    assert planted.returncode != 0 and "PermissionError" in planted.stderr_tail
    assert not (data / "planted").exists()
    assert mine.stdout == "media"
    assert set(seen["env"]) <= ALLOWED_VARIABLES


@root_only
def test_a_stored_file_linked_into_the_temp_dir_is_read_but_never_written_by_a_jailed_child(
    tmp_path: Path,
) -> None:
    """Local storage's get_file is a hard link (no copy): where one lands in a job's temp dir, which is given
    to the sandbox uid, the linked file must not be given too, or a child could rewrite the stored object."""
    data = tmp_path / "data"
    storage = LocalStorage(data / "files")
    storage.put_bytes("media/a/original/source.mp4", b"media")
    workdir = data / "tmp" / "job-1"
    storage.get_file("media/a/original/source.mp4", workdir / "source" / "source.mp4")
    jail = Sandbox(workdir=lambda: workdir, hidden=(data, data / "tmp", data / "files"))
    with process.cancellable(None, None, jail):
        read = process.run(["cat", "source/source.mp4"], network=False, capture_stdout=True)
        written = process.run(["sh", "-c", "echo x >> source/source.mp4"], network=False, check=False)
    stored = storage.path("media/a/original/source.mp4")
    assert read.stdout == "media"
    assert written.returncode != 0
    assert stored.read_bytes() == b"media" and stored.stat().st_uid == os.geteuid()


@pytest.mark.parametrize("mounts", [True, False], ids=["mount-namespace", "landlock-only"])
def test_a_jailed_ffmpeg_reads_the_stored_files_a_job_allows_and_nothing_else_of_the_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mounts: bool
) -> None:
    """Segments read in place (`JobContext.allow_reading`, local storage): a jailed ffmpeg remuxes the allowed
    rendition's segment into its temp dir, but cannot read another rendition of the asset or another asset's
    original, nor write anything in the allowed directory."""
    if mounts and not (os.geteuid() == 0 and sandbox.mounts_available()):
        pytest.skip("mount namespaces need a root worker")
    if not mounts:
        if confine.landlock_abi() < 1:
            pytest.skip("this kernel has no Landlock")
        monkeypatch.setattr(sandbox, "mounts_available", lambda: False)
    clip = tmp_path / "clip.ts"
    make = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1"]
    process.run([*make, "-c:v", "mpeg2video", "-f", "mpegts", str(clip)])
    data = tmp_path / "data"
    storage = LocalStorage(data / "files")
    for key in (
        "media/a/hls/v1/720p/seg_00000.ts",
        "media/a/hls/v1/480p/seg_00000.ts",
        "media/b/original/b.ts",
    ):
        storage.put_file(key, clip)
    segment = storage.path("media/a/hls/v1/720p/seg_00000.ts")
    workdir = data / "tmp" / "job-1"
    workdir.mkdir(parents=True)
    readable = (segment.parent,)
    jail = Sandbox(
        workdir=lambda: workdir, hidden=(data, data / "tmp", data / "files"), readable=lambda: readable
    )

    def at(key: str) -> str:
        # From the child's working directory (its temp dir): without a mount namespace the sandbox uid could
        # not pass through pytest's 0700 temp dirs above the data dir by an absolute path.
        return os.path.relpath(storage.path(key), workdir)

    def remux(key: str, out: str) -> process.Completed:
        args = ["ffmpeg", "-v", "error", "-i", at(key), "-c", "copy", "-f", "mpegts", "-y", out]
        return process.run(args, network=False, check=False)

    with process.cancellable(None, None, jail):
        read = remux("media/a/hls/v1/720p/seg_00000.ts", "out.ts")
        other_rung = remux("media/a/hls/v1/480p/seg_00000.ts", "rung.ts")
        other_asset = remux("media/b/original/b.ts", "other.ts")
        written = remux(
            "media/a/hls/v1/720p/seg_00000.ts", os.path.relpath(segment.parent / "planted.ts", workdir)
        )
        appended = process.run(
            ["sh", "-c", f"echo x >> {at('media/a/hls/v1/720p/seg_00000.ts')}"], network=False, check=False
        )
    assert read.returncode == 0 and (workdir / "out.ts").stat().st_size > 0
    assert other_rung.returncode != 0 and other_asset.returncode != 0
    assert not (workdir / "rung.ts").exists() and not (workdir / "other.ts").exists()
    assert written.returncode != 0 and appended.returncode != 0
    assert not (segment.parent / "planted.ts").exists()
    assert segment.read_bytes() == clip.read_bytes()
