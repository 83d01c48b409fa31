"""The CLI finds the API where MEDIAJOBS_HOST/PORT put it, and `doctor` checks that it answers there."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs.config import Settings
from mediajobs.testing.servers import free_port
from mediajobs.testing.stacks import Stack
from tests.cli.test_client import as_json, mediajobs

sqlite_stack = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"port": 8301}, "http://127.0.0.1:8301"),
        ({"host": "0.0.0.0", "port": 9000}, "http://127.0.0.1:9000"),
        ({"host": "::", "port": 9000}, "http://[::1]:9000"),
        ({"host": "::1"}, "http://[::1]:8000"),
        ({"host": "media.internal", "port": 443}, "http://media.internal:443"),
        ({"port": 8301, "api_url": "https://media.example.com"}, "https://media.example.com"),
    ],
)
def test_the_cli_calls_the_api_url_or_the_host_and_port_the_api_listens_on(
    env: dict[str, object], url: str
) -> None:
    assert Settings(_env_file=None, **env).effective_api_url == url  # type: ignore[arg-type,call-arg]


def without_api_url(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in stack.env.items() if k != "MEDIAJOBS_API_URL"}
    assert env["MEDIAJOBS_PORT"] == str(stack.port) != "8000"
    return env


@sqlite_stack
def test_a_non_default_port_exported_is_where_the_cli_and_doctor_look(stack: Stack) -> None:
    env = without_api_url(stack)
    listed = mediajobs(env, "jobs", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    as_json(listed)

    doctor = mediajobs(env, "doctor", timeout_s=120)
    assert (
        f"ok    api        answers at http://127.0.0.1:{stack.port} (from MEDIAJOBS_HOST and MEDIAJOBS_PORT)"
        in doctor.stdout
    ), doctor.stdout


@sqlite_stack
def test_doctor_fails_when_no_api_answers_where_the_cli_looks_and_says_where(stack: Stack) -> None:
    port = free_port()
    env = {**without_api_url(stack), "MEDIAJOBS_PORT": str(port)}
    doctor = mediajobs(env, "doctor", timeout_s=120)
    assert doctor.returncode == 1
    assert f"FAIL  api        RuntimeError: no API answers at http://127.0.0.1:{port}" in doctor.stdout
    assert "all checks passed" not in doctor.stdout
    listed = mediajobs(env, "jobs", "ls")
    assert listed.returncode != 0
    assert f"cannot reach the mediajobs API at http://127.0.0.1:{port}" in listed.stderr


@sqlite_stack
def test_doctor_fails_when_the_api_refuses_the_clis_key(stack: Stack, tmp_path: Path) -> None:
    # An API with keys and a CLI with the wrong one: a second API process, with a key, on the same database.
    keyed = Stack(tmp_path, {**stack.env, "MEDIAJOBS_API_KEYS": "right-key"})
    keyed.start_api()
    try:
        env = {**without_api_url(keyed), "MEDIAJOBS_API_KEY": "wrong-key"}
        doctor = mediajobs(env, "doctor", timeout_s=120)
        assert doctor.returncode == 1
        assert "FAIL  api" in doctor.stdout and "refuses the CLI's key" in doctor.stdout, doctor.stdout
        assert "wrong-key" not in doctor.stdout and "right-key" not in doctor.stdout
        ok = mediajobs({**env, "MEDIAJOBS_API_KEY": "right-key"}, "doctor", timeout_s=120)
        assert f"ok    api        answers at http://127.0.0.1:{keyed.port}" in ok.stdout, ok.stdout
    finally:
        keyed.stop()
