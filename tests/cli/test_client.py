from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from mediajobs.cli import cli
from mediajobs.config import get_settings
from tests.conftest import MakeStack, submit, wait_state
from tests.servers import REPO, Stack, base_env, free_port, wait_for

# The CLI talks HTTP, so the database behind the API does not matter here: SQLite is enough.
sqlite_stack = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


def mediajobs(env: dict[str, str], *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediajobs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
    )


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mediajobs", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def runner(stack: Stack) -> Iterator[CliRunner]:
    """In-process invocations; the settings cache is cleared so that they read the stack's environment."""
    get_settings.cache_clear()
    yield CliRunner(env={key: value for key, value in stack.env.items() if key.startswith("MEDIAJOBS_")})
    get_settings.cache_clear()


@sqlite_stack
def test_submit_wait_prints_the_result(stack: Stack) -> None:
    result = mediajobs(stack.env, "submit", "test.add", "-p", "x=2", "-p", "y=3", "--wait")
    assert result.returncode == 0, result.stderr
    assert "result: 5" in result.stdout.splitlines()
    assert "succeeded" in result.stderr


@sqlite_stack
def test_submit_wait_shows_every_stage_up_to_100_percent(stack: Stack) -> None:
    result = mediajobs(stack.env, "submit", "test.long_task", "--wait")
    assert result.returncode == 0, result.stderr
    for stage in ("Preparing", "Downloading", "Processing", "Uploading", "Finishing"):
        assert stage in result.stderr
    assert "ETA" in result.stderr
    assert result.stderr.splitlines()[-1].split()[1:3] == ["succeeded", "[####################]"]
    assert "100.0%" in result.stderr.splitlines()[-1]


@sqlite_stack
def test_submit_wait_exits_nonzero_with_the_error_when_the_job_fails(stack: Stack) -> None:
    result = mediajobs(stack.env, "submit", "tests.permanent", "--wait")
    assert result.returncode == 1
    assert "failed: unsupported_media: the file is a text file, not a video" in result.stderr


@sqlite_stack
def test_submit_wait_exits_nonzero_when_the_job_is_cancelled(stack: Stack) -> None:
    waiting = spawn(stack.env, "submit", "test.sleep", "-p", "seconds=29.5", "--wait")

    def running() -> list[dict[str, Any]]:
        items = api.get("/api/v1/jobs", params={"kind": "test.sleep", "state": "running"}).json()["items"]
        return [item for item in items if item["params"] == {"seconds": 29.5}]

    with stack.client() as api:
        job = wait_for(running, message="the sleep job to run")[0]  # type: ignore[index]
        api.delete(f"/api/v1/jobs/{job['id']}")
    _out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 1
    assert f"job {job['id']} cancelled" in err


@sqlite_stack
def test_submit_json_prints_the_job(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["submit", "test.add", "-p", "x=1", "-p", "y=2.5", "--priority", "7", "--json"]
    )
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert (job["kind"], job["params"], job["priority"]) == ("test.add", {"x": 1, "y": 2.5}, 7)


@sqlite_stack
def test_jobs_ls_lists_succeeded_jobs(stack: Stack) -> None:
    job = as_json(mediajobs(stack.env, "submit", "test.add", "-p", "x=1", "-p", "y=1", "--wait", "--json"))
    listed = as_json(mediajobs(stack.env, "jobs", "ls", "--state", "succeeded", "--json"))
    assert job["id"] in [item["id"] for item in listed["items"]]
    assert {item["state"] for item in listed["items"]} == {"succeeded"}
    table = mediajobs(stack.env, "jobs", "ls", "--state", "succeeded")
    assert table.stdout.splitlines()[0].split() == ["ID", "KIND", "STATE", "PROGRESS", "STAGE", "AGE"]
    row = next(line for line in table.stdout.splitlines() if line.startswith(job["id"]))
    assert row.split()[1:4] == ["test.add", "succeeded", "100%"]


@sqlite_stack
def test_jobs_ls_all_follows_the_cursors(stack: Stack) -> None:
    with stack.client() as api:
        ids = {submit(api, "test.add", {"x": n, "y": 0})["id"] for n in range(3)}
    one_page = as_json(mediajobs(stack.env, "jobs", "ls", "--kind", "test.add", "--limit", "1", "--json"))
    every_page = as_json(
        mediajobs(stack.env, "jobs", "ls", "--kind", "test.add", "--limit", "1", "--all", "--json")
    )
    assert len(one_page["items"]) == 1 and one_page["next_cursor"]
    assert ids <= {item["id"] for item in every_page["items"]}
    assert every_page["next_cursor"] is None


@sqlite_stack
def test_jobs_cancel_stops_a_running_job(stack: Stack) -> None:
    job = as_json(mediajobs(stack.env, "submit", "test.sleep", "-p", "seconds=30", "--json"))
    with stack.client() as api:
        wait_state(api, job["id"], "running")
    result = mediajobs(stack.env, "jobs", "cancel", job["id"], "--wait")
    assert result.returncode == 0, result.stderr
    assert as_json(mediajobs(stack.env, "jobs", "show", job["id"], "--json"))["state"] == "cancelled"
    shown = mediajobs(stack.env, "jobs", "show", job["id"])
    assert "cancelled by request" in shown.stdout


@sqlite_stack
def test_jobs_retry_wait_runs_a_new_attempt(stack: Stack, tmp_path: Path) -> None:
    params = ["-p", "fail_times=1", "-p", f"counter={tmp_path / 'runs'}"]
    failed = mediajobs(stack.env, "submit", "tests.flaky", *params, "--max-attempts", "1", "--wait", "--json")
    job = json.loads(failed.stdout)
    assert (failed.returncode, job["state"]) == (1, "failed")
    retried = as_json(mediajobs(stack.env, "jobs", "retry", job["id"], "--wait", "--json"))
    assert (retried["state"], retried["attempt"], retried["result"]) == ("succeeded", 2, 2)


@sqlite_stack
def test_jobs_watch_follows_a_job_to_its_end(stack: Stack) -> None:
    with stack.client() as api:
        job = submit(api, "test.sleep", {"seconds": 1})
    result = mediajobs(stack.env, "jobs", "watch", job["id"])
    assert result.returncode == 0, result.stderr
    assert f"job {job['id']} succeeded" in result.stdout


@sqlite_stack
def test_unknown_kind_exits_1_with_the_api_detail(stack: Stack) -> None:
    result = mediajobs(stack.env, "submit", "no.such.kind")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "unknown kind 'no.such.kind'" in result.stderr
    assert "Traceback" not in result.stderr


@sqlite_stack
def test_invalid_params_exit_1_with_the_field_that_is_wrong(stack: Stack) -> None:
    result = mediajobs(stack.env, "submit", "test.add", "-p", "x=one", "-p", "y=2")
    assert result.returncode == 1
    assert "x" in result.stderr and "Traceback" not in result.stderr


@sqlite_stack
def test_unknown_job_id_exits_1_with_not_found(stack: Stack) -> None:
    result = mediajobs(stack.env, "jobs", "show", "00000000-0000-0000-0000-000000000000")
    assert result.returncode == 1
    assert "no job with id" in result.stderr


def test_api_down_exits_2_with_a_friendly_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = mediajobs(base_env(MEDIAJOBS_API_URL=url), "submit", "test.add", "--wait")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: cannot reach the mediajobs API at {url} (is `mediajobs up` running?)"
    )


def test_api_keys_are_sent_as_a_bearer_token(make_stack: MakeStack) -> None:
    stack = make_stack(workers=1, api_keys="first-key,second-key")
    assert as_json(mediajobs(stack.env, "submit", "test.add", "-p", "x=1", "-p", "y=1", "--wait", "--json"))
    explicit = {**stack.env, "MEDIAJOBS_API_KEYS": "", "MEDIAJOBS_API_KEY": "second-key"}
    assert as_json(mediajobs(explicit, "jobs", "ls", "--json"))["items"]
    wrong = mediajobs({**stack.env, "MEDIAJOBS_API_KEY": "wrong"}, "jobs", "ls")
    assert wrong.returncode == 1
    assert "invalid API key" in wrong.stderr


def test_wait_survives_an_api_restart(make_stack: MakeStack) -> None:
    stack = make_stack(workers=1)
    waiting = spawn(stack.env, "submit", "test.sleep", "-p", "seconds=4", "--wait")
    with stack.client() as api:
        wait_for(
            lambda: api.get("/api/v1/jobs", params={"state": "running"}).json()["items"],
            message="the sleep job to run",
        )
    assert stack.api is not None
    os.killpg(stack.api.pid, signal.SIGKILL)
    stack.api.wait(timeout=10)
    wait_for(lambda: _refused(stack.api_url), message="the API to be down")
    stack.start_api()
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "succeeded" in out


def _refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=1)
    except httpx.ConnectError:
        return True
    return False
