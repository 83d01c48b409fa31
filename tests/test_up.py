from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from stat import S_IMODE, S_ISSOCK
from typing import Any

import click
import httpx
import pytest

from mediajobs.cli.server import refuse_open_bind
from mediajobs.config import Settings
from mediajobs.testing.servers import free_port, wait_for
from mediajobs.testing.stacks import base_env
from mediajobs.testing.up import Up, descendants
from tests.pids import alive
from tests.stacks import KINDS


@pytest.fixture
def make_up(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    """Factory: a started `mediajobs up` in a directory of its own; every one is stopped afterwards."""
    ups: list[Up] = []

    def make(name: str = "up", **env: str) -> Up:
        up = Up(tmp_path / name, MEDIAJOBS_KIND_MODULES=KINDS, **env)
        ups.append(up)
        return up.start()

    yield make
    for up in ups:
        up.stop()


def run_up(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediajobs", "up"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def submit_counted(api: str, path: Path, n: int) -> list[str]:
    """Submit `n` tests.count jobs that append their id to `path` each time they run; their ids."""
    with httpx.Client(base_url=api, timeout=10) as client:
        answers = [
            client.post("/api/v1/jobs", json={"kind": "tests.count", "params": {"path": str(path)}})
            for _ in range(n)
        ]
    assert [a.status_code for a in answers] == [202] * n, answers[-1].text
    return [a.json()["id"] for a in answers]


def states_of(api: str, ids: list[str]) -> dict[str, Any]:
    with httpx.Client(base_url=api, timeout=10) as client:
        return {i: client.get(f"/api/v1/jobs/{i}").json()["state"] for i in ids}


def test_two_stacks_on_one_machine_keep_their_own_redis_and_run_only_their_own_jobs(
    make_up: Callable[..., Up], tmp_path: Path
) -> None:
    # One data dir whose socket path fits in sockaddr_un, one too deep for it (a recorded port instead).
    short = make_up("a")
    deep = make_up("b" * 40 + "/" + "c" * 40)
    assert Settings(data_dir=short.data_dir).managed_broker_socket is not None
    assert Settings(data_dir=deep.data_dir).managed_broker_socket is None
    assert S_ISSOCK((short.data_dir / "redis" / "redis.sock").stat().st_mode)
    assert int((deep.data_dir / "redis" / "port").read_text()) > 0
    for up in (short, deep):
        assert S_IMODE((up.data_dir / "redis" / "password").stat().st_mode) == 0o600
    passwords = {(up.data_dir / "redis" / "password").read_text().strip() for up in (short, deep)}
    assert len(passwords) == 2 and all(passwords)

    # Both at once: every job runs in its own stack, long before any republish (600 s by default).
    jobs = {up: submit_counted(up.api_url, tmp_path / f"runs-{i}", 40) for i, up in enumerate((short, deep))}
    for up, ids in jobs.items():
        wait_for(
            lambda up=up, ids=ids: set(states_of(up.api_url, ids).values()) == {"succeeded"},  # type: ignore[misc]
            timeout_s=30,
            message=f"the jobs of {up.directory.name[:10]} to succeed",
        )
        assert set(up.workers_of_jobs(ids).values()) <= up.pids()

    # The CLI finds its stack's Redis through the data dir alone.
    doctor = subprocess.run(
        [sys.executable, "-m", "mediajobs", "doctor"],
        env=short.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "ok    broker" in doctor.stdout, doctor.stdout
    assert not any(password in doctor.stdout for password in passwords)

    # A second `up` on a data dir in use says so and starts nothing.
    second = run_up({**short.env, "MEDIAJOBS_PORT": str(free_port())}, tmp_path)
    assert second.returncode != 0
    assert "another `mediajobs up`" in second.stderr and str(short.data_dir) in second.stderr
    assert short.pid_of(b"redis-server") in short.pids()


def test_up_exits_with_the_reason_when_its_redis_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = free_port()
        env = base_env(
            MEDIAJOBS_DATA_DIR=str(tmp_path / "data"),
            MEDIAJOBS_PORT=str(port),
            MEDIAJOBS_MANAGED_BROKER_PORT=str(taken.getsockname()[1]),
        )
        done = run_up(env, tmp_path)
    assert done.returncode != 0
    assert "the managed redis-server could not start" in done.stderr
    assert "Address already in use" in done.stderr, done.stderr
    # Nothing ran against whatever holds that port: no API was started.
    assert "started api" not in done.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


def test_up_runs_the_stack_restarts_dead_parts_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(
        MEDIAJOBS_DATA_DIR=str(tmp_path / "data"),
        MEDIAJOBS_PORT=str(port),
        MEDIAJOBS_MANAGED_BROKER_PORT=str(free_port()),
        MEDIAJOBS_IO_CONCURRENCY="2",
    )
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "mediajobs", "up"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    api = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: httpx.get(f"{api}/healthz", timeout=1).status_code == 200,
            timeout_s=40,
            message="the API started by `up`",
        )
        job = httpx.post(f"{api}/api/v1/jobs", json={"kind": "test.add", "params": {"x": 40, "y": 2}}).json()
        wait_for(
            lambda: httpx.get(f"{api}/api/v1/jobs/{job['id']}").json()["state"] == "succeeded",
            timeout_s=40,
            message="the job to succeed",
        )
        assert (tmp_path / "data" / "redis").is_dir()
        assert (tmp_path / "data" / "mediajobs.db").exists()

        # Kill the API: `up` notices, says so and starts it again.
        api_pid = next(
            p
            for p in descendants(up.pid)
            if b" api" in Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")
        )
        os.kill(api_pid, signal.SIGKILL)
        wait_for(
            lambda: "api exited with code -9; restarting" in log_path.read_text(),
            timeout_s=10,
            message="the restart to be logged",
        )
        wait_for(
            lambda: httpx.get(f"{api}/healthz", timeout=1).status_code == 200,
            timeout_s=30,
            message="the API to come back",
        )

        # A fast job runs while a cpu job occupies the cpu pool.
        slow = httpx.post(f"{api}/api/v1/jobs", json={"kind": "test.sleep", "params": {"seconds": 30}}).json()
        quick = httpx.post(f"{api}/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 1}}).json()
        wait_for(
            lambda: httpx.get(f"{api}/api/v1/jobs/{quick['id']}").json()["state"] == "succeeded",
            timeout_s=20,
            message="the quick job",
        )
        httpx.delete(f"{api}/api/v1/jobs/{slow['id']}")
        family = descendants(up.pid)
        assert len(family) >= 4  # redis, api, two workers (and their pool children)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=40)
    assert up.returncode == 0
    wait_for(lambda: not any(alive(p) for p in family), timeout_s=10, message="every part to be gone")
    assert "stopped" in log_path.read_text()


@pytest.mark.parametrize(
    ("argv", "host"),
    [
        (["up"], "0.0.0.0"),
        (["api"], "0.0.0.0"),
        (["api"], "::"),
        (["api", "--host", "192.0.2.10"], "127.0.0.1"),
        (["up"], "media.example.com"),
    ],
)
def test_open_bind_without_keys_is_refused_before_anything_starts(
    tmp_path: Path, argv: list[str], host: str
) -> None:
    env = base_env(
        MEDIAJOBS_DATA_DIR=str(tmp_path / "data"), MEDIAJOBS_HOST=host, MEDIAJOBS_PORT=str(free_port())
    )
    done = subprocess.run(
        [sys.executable, "-m", "mediajobs", *argv], env=env, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode != 0
    message = done.stderr.decode()
    assert "MEDIAJOBS_API_KEYS" in message and "--insecure-no-auth" in message, message
    # Nothing started: no managed Redis, no database, not even the data directory.
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("host", "keys", "insecure", "refused"),
    [
        ("127.0.0.1", "", False, False),
        ("localhost", "", False, False),
        ("::1", "", False, False),
        ("127.0.0.2", "", False, False),
        ("0.0.0.0", "k", False, False),
        ("0.0.0.0", "", True, False),
        ("0.0.0.0", "", False, True),
        ("10.0.0.5", "", False, True),
    ],
)
def test_only_loopback_keys_or_the_explicit_flag_allow_a_bind(
    host: str, keys: str, insecure: bool, refused: bool
) -> None:
    settings = Settings(host=host, api_keys=keys)
    if refused:
        with pytest.raises(click.UsageError):
            refuse_open_bind(settings, host, insecure)
    else:
        refuse_open_bind(settings, host, insecure)


def test_a_first_start_is_quiet_and_says_where_to_open_it(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(MEDIAJOBS_DATA_DIR=str(tmp_path / "data"), MEDIAJOBS_PORT=str(port))
    env.pop("MEDIAJOBS_BROKER_URL", None)  # the managed Redis, as on a fresh install
    up = subprocess.Popen(
        [sys.executable, "-m", "mediajobs", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200,
            timeout_s=40,
            message="the API started by `up`",
        )
        # Long enough for every part to be up, the workers' first maintenance round included.
        workers = [c for c in _cmdlines(up.pid) if " worker " in c]
        assert len(workers) >= 2, workers
        time.sleep(8)  # every part's start-up and first maintenance round (where the broker is looked at)
    finally:
        up.send_signal(signal.SIGINT)
        said, _ = up.communicate(timeout=40)
    text = said.decode(errors="replace")
    until_stop = text.split("stopping mediajobs")[0]
    assert f"mediajobs is up: http://127.0.0.1:{port}/ (Ctrl-C stops everything)" in until_stop, text
    for noise in (
        "SecurityWarning",  # Celery on root: the workers are root on purpose (their children are jailed)
        "superuser privileges",
        "-------------- ",  # Celery's banner
        "alembic",
        "Running upgrade",
        "messages may be gone",
        "republished 0",
        "Reading config from stdin",
        "Uvicorn running",
    ):
        assert noise not in until_stop, f"{noise!r} in:\n{until_stop}"
    assert len(until_stop.strip().splitlines()) <= 3, until_stop


def _cmdlines(pid: int) -> list[str]:
    found = []
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found
