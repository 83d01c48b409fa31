from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import MakeStack
from tests.servers import Stack


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediajobs", "doctor"], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("stack", ["postgresql"], indirect=True)
def test_doctor_passes_with_every_queue_consumed_and_masks_secrets(stack: Stack) -> None:
    result = doctor({**stack.env, "MEDIAJOBS_API_KEYS": "very-secret-key"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for part in ("database", "broker", "storage", "ffmpeg", "ffprobe", "yt-dlp", "queues"):
        assert f"ok    {part}" in out
    assert "secret-pw" not in out and "very-secret-key" not in out
    assert ":****@" in out
    assert "all checks passed" in out


def test_doctor_fails_naming_queues_no_worker_consumes(make_stack: MakeStack) -> None:
    stack = make_stack(queues="default")
    result = doctor(stack.env)
    assert result.returncode == 1
    assert "FAIL  queues" in result.stdout
    assert "no worker consumes io, cpu" in result.stdout


def test_doctor_fails_when_the_broker_is_unreachable(make_stack: MakeStack) -> None:
    stack = make_stack(workers=0)
    result = doctor({**stack.env, "MEDIAJOBS_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 1
    assert "FAIL  broker" in result.stdout
