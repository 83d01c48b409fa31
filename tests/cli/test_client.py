from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from mediajobs.cli import cli
from mediajobs.cli.apiclient import ApiClient, ClientError, SseEvent, parse_sse
from mediajobs.cli.client import parse_param
from mediajobs.cli.progress import JobProgress, Line
from mediajobs.config import get_settings
from mediajobs.testing.files import MEDIA_MAGIC, Served, media_like
from mediajobs.testing.servers import free_port, wait_for
from mediajobs.testing.stacks import Stack, base_env
from tests.clips import MakeClip
from tests.conftest import MakeStack, submit, wait_state
from tests.media_api.cutter import CuttingProxy

# The CLI talks HTTP, so the database behind the API does not matter here: SQLite is enough.
sqlite_stack = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


def workdir(env: dict[str, str]) -> Path:
    """The stack's own directory (no stray `.env` is read from the repository)."""
    return (
        Path(env["MEDIAJOBS_DATA_DIR"]).parent if "MEDIAJOBS_DATA_DIR" in env else Path(tempfile.gettempdir())
    )


def mediajobs(env: dict[str, str], *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediajobs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=workdir(env),
    )


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mediajobs", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir(env),
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


def test_parse_sse_joins_data_lines_and_skips_comments_and_retry() -> None:
    body = 'retry: 1000\n\n: keep-alive\nevent: job\nid: 7\ndata: {"a":\ndata:  1}\n\ndata: x\r\n\r\n'
    assert list(parse_sse(body.splitlines(keepends=True))) == [
        SseEvent("job", '{"a":\n 1}', "7"),
        SseEvent("message", "x", "7"),
    ]


def test_parse_sse_drops_an_event_cut_off_before_its_blank_line() -> None:
    assert list(parse_sse(["event: job", "data: {}", ""])) == [SseEvent("job", "{}")]
    assert list(parse_sse(["event: job", "data: {}"])) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x=1", ("x", 1)),
        ("ratio=0.5", ("ratio", 0.5)),
        ("name=abc", ("name", "abc")),
        ("flags=[1,2]", ("flags", [1, 2])),
        ('opts={"a": true}', ("opts", {"a": True})),
        ("on=true", ("on", True)),
        ("nothing=null", ("nothing", None)),
        ('quoted="12"', ("quoted", "12")),
        ("url=http://x/?a=b", ("url", "http://x/?a=b")),
        ("empty=", ("empty", "")),
    ],
)
def test_parse_param_reads_json_values_and_falls_back_to_text(text: str, expected: tuple[str, Any]) -> None:
    assert parse_param(text) == expected


@pytest.mark.parametrize("text", ["x", "=1", " =1"])
def test_parse_param_rejects_text_that_is_not_key_value(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_param(text)


def test_client_error_lists_field_errors_the_detail_does_not_already_say() -> None:
    errors = [{"loc": ["params", "x"], "field": "params.x", "message": "required"}, {"msg": "too big"}]
    error = ClientError("invalid params: params.x: required", status=422, errors=errors)
    assert error.render() == "error: invalid params: params.x: required\n  - too big"


def test_absolute_url_puts_relative_paths_under_the_api_base() -> None:
    with ApiClient("http://host:8000/prefix/") as client:
        assert client.absolute_url("/api/v1/m/1/files/master.m3u8") == (
            "http://host:8000/prefix/api/v1/m/1/files/master.m3u8"
        )
        assert client.absolute_url("https://cdn/x.m3u8?sig=1") == "https://cdn/x.m3u8?sig=1"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def job_at(state: str, progress: float, stage: str, eta: float | None = None) -> dict[str, Any]:
    return {
        "id": "j1",
        "kind": "test.long_task",
        "state": state,
        "progress": progress,
        "stage": stage,
        "eta_seconds": eta,
        "attempt": 1,
        "max_attempts": 3,
    }


def test_progress_without_a_tty_prints_a_line_per_state_and_stage() -> None:
    out = io.StringIO()
    display = JobProgress(Line(out))
    for job in [
        job_at("queued", 0, ""),
        job_at("running", 10, "Stage 1", 9),
        job_at("running", 11, "Stage 1", 8),
        job_at("succeeded", 100, "Done"),
    ]:
        display.update(job)
    display.close()
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["queued", "running", "succeeded"]
    assert "10.0%  ETA 9s  Stage 1" in lines[1]
    assert lines[2].endswith("100.0%  Done")


def test_progress_on_a_tty_redraws_one_line() -> None:
    out = Terminal()
    display = JobProgress(Line(out))
    display.update(job_at("running", 50, "a long stage name"))
    display.update(job_at("running", 60, "short"))
    display.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert last.rstrip().endswith("60.0%  short") and len(last) == len(text.split("\r")[1])


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
    assert table.stdout.splitlines()[0].split() == [
        "ID",
        "KIND",
        "STATE",
        "PROGRESS",
        "STAGE",
        "AGE",
        "MEDIA",
    ]
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


@sqlite_stack
def test_media_upload_wait_prints_a_playable_absolute_hls_master_url(
    stack: Stack, make_clip: MakeClip
) -> None:
    clip = make_clip(duration=2.0)
    result = mediajobs(stack.env, "media", "upload", str(clip), "--wait", timeout_s=180)
    assert result.returncode == 0, result.stderr
    assert "upload clip0.mp4" in result.stderr and "100.0%" in result.stderr
    master = next(line for line in result.stdout.splitlines() if line.startswith("hls master: "))
    url = master.removeprefix("hls master: ")
    assert url.startswith(stack.api_url + "/")
    playlist = httpx.get(url, follow_redirects=True, timeout=10)
    assert playlist.status_code == 200 and playlist.text.startswith("#EXTM3U")


@sqlite_stack
def test_media_ls_show_and_rm(stack: Stack, make_clip: MakeClip) -> None:
    created = as_json(mediajobs(stack.env, "media", "upload", str(make_clip()), "--json"))
    media_id = created["media"]["id"]
    assert created["job"]["id"] in created["media"]["jobs"]
    listed = mediajobs(stack.env, "media", "ls")
    assert listed.stdout.splitlines()[0].split() == [
        "ID",
        "STATE",
        "TITLE",
        "DURATION",
        "SIZE",
        "AGE",
        "SOURCE",
    ]
    assert any(line.startswith(media_id) for line in listed.stdout.splitlines())
    shown = mediajobs(stack.env, "media", "show", media_id)
    assert shown.returncode == 0 and "clip0.mp4" in shown.stdout
    removed = mediajobs(stack.env, "media", "rm", media_id)
    assert removed.returncode == 0, removed.stderr
    wait_for(
        lambda: mediajobs(stack.env, "media", "show", media_id).returncode == 1,
        timeout_s=30,
        message="the media to be gone",
    )


@sqlite_stack
def test_media_wait_exits_nonzero_when_the_media_fails(stack: Stack, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 2000)  # starts as an MP4, holds nothing
    result = mediajobs(stack.env, "media", "upload", str(broken), "--wait", timeout_s=120)
    assert result.returncode == 1
    assert "failed: unsupported_media: the file " in result.stderr.splitlines()[-1], result.stderr


def test_media_import_wait_follows_the_import_and_its_pipeline(
    make_stack: MakeStack, make_clip: MakeClip, served: Served
) -> None:
    stack = make_stack(import_allow_private="true")
    make_clip(name="talk.mp4").rename(served.root / "talk.mp4")
    result = mediajobs(
        stack.env,
        "media",
        "import",
        served.url("talk.mp4"),
        "--pipeline",
        "thumbnail",
        "--wait",
        "--json",
        timeout_s=180,
    )
    media = as_json(result)
    assert media["state"] == "ready" and media["thumbnail_url"] and media["hls"] is None
    assert len(media["jobs"]) >= 2
    assert "succeeded" in result.stderr


@sqlite_stack
def test_media_upload_streams_without_holding_the_file_in_memory(stack: Stack, tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    with big.open("wb") as f:
        f.write(MEDIA_MAGIC)  # zeros after the first bytes of a Matroska file: not refused as "not media"
        f.truncate(300 * 1024**2)
    measure = (
        "import resource, subprocess, sys\n"
        f"argv = [sys.executable, '-m', 'mediajobs', 'media', 'upload', {str(big)!r}]\n"
        "code = subprocess.run(argv).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", measure],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir(stack.env),
    )
    code, peak_mib = map(int, result.stdout.strip().splitlines()[-1].split())
    assert code == 0, result.stderr
    assert peak_mib < 120, f"the CLI peaked at {peak_mib} MiB uploading 300 MiB"


@sqlite_stack
def test_media_upload_retries_dropped_connections_by_itself(stack: Stack, tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(media_like(12 * 1024**2))
    proxy = CuttingProxy([stack.port], cuts=[2_000_000, 5_000_000, 3_000_000])
    env = {**stack.env, "MEDIAJOBS_API_URL": proxy.url, "XDG_STATE_HOME": str(tmp_path / "state")}
    try:
        result = mediajobs(env, "media", "upload", str(big), "--json", timeout_s=180)
    finally:
        proxy.stop()
    assert result.returncode == 0, result.stderr
    assert proxy.cut_count == 3
    media = as_json(result)["media"]
    assert media["original"]["size"] == big.stat().st_size
    stored = httpx.get(f"{stack.api_url}/api/v1/media/{media['id']}/files/original/big.mp4", timeout=30)
    assert stored.content == big.read_bytes()


@sqlite_stack
def test_media_upload_resumes_an_upload_interrupted_in_an_earlier_run(stack: Stack, tmp_path: Path) -> None:
    big = tmp_path / "resumed.mp4"
    big.write_bytes(media_like(200 * 1024**2))
    size = big.stat().st_size
    proxy = CuttingProxy([stack.port])  # both runs go through it; it counts what the second one sends
    env = {**stack.env, "XDG_STATE_HOME": str(tmp_path / "state"), "MEDIAJOBS_API_URL": proxy.url}
    first = spawn(env, "media", "upload", str(big))

    def uploading() -> dict[str, Any] | None:
        items = httpx.get(f"{stack.api_url}/api/v1/media", params={"state": "uploading"}).json()["items"]
        return next((m for m in items if m["upload"] and m["upload"]["offset"] > 0), None)

    try:
        asset = wait_for(uploading, timeout_s=60, message="the first run to have stored some bytes")
        first.kill()  # an interrupted run: no goodbye to the server
        first.wait(timeout=10)
        assert isinstance(asset, dict)
        upload_url = f"{stack.api_url}/api/v1/uploads/{asset['upload']['url'].rsplit('/', 1)[1]}"
        head = httpx.head(upload_url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
        offset = int(head.headers["upload-offset"])
        assert 0 < offset < size
        sent_before = proxy.forwarded
        result = mediajobs(env, "media", "upload", str(big), "--json")
    finally:
        proxy.stop()
    assert result.returncode == 0, result.stderr
    media = as_json(result)["media"]
    assert media["id"] == asset["id"]  # the same asset, not a second one
    assert media["original"]["size"] == size
    assert proxy.forwarded - sent_before < size - offset + 64 * 1024, (
        "the second run sent what the server had"
    )
    stored = httpx.get(f"{stack.api_url}/api/v1/media/{media['id']}/files/original/resumed.mp4", timeout=60)
    assert hashlib.sha256(stored.content).digest() == hashlib.sha256(big.read_bytes()).digest()
