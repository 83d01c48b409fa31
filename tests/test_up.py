from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click
import httpx
import pytest

from mediajobs.cli.server import refuse_open_bind
from mediajobs.config import Settings
from tests.servers import base_env, free_port, wait_for


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


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
