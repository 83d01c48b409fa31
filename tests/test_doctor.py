from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mediajobs.testing.stacks import Stack, base_env
from tests.conftest import MakeStack


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


def test_doctor_hides_query_secrets_and_userinfo_and_warns_of_test_only_settings(tmp_path: Path) -> None:
    env = base_env(
        MEDIAJOBS_DATA_DIR=str(tmp_path / "data"),
        MEDIAJOBS_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}?password=dbquerypw",
        MEDIAJOBS_BROKER_URL="redis://broker-user:brokerpw@127.0.0.1:1/0?token=brokertoken",
        MEDIAJOBS_S3_ENDPOINT_URL="https://AKIDEXAMPLE:s3secretvalue@127.0.0.1:1/?X-Amz-Signature=sig0123",
        MEDIAJOBS_API_URL="http://127.0.0.1:1/?api_key=cliapikey",
        MEDIAJOBS_IMPORT_PUBLIC_CIDRS="127.0.0.2/32",
    )
    result = doctor(env)
    out = result.stdout + result.stderr
    for secret in (
        "dbquerypw",
        "broker-user",
        "brokerpw",
        "brokertoken",
        "AKIDEXAMPLE",
        "s3secretvalue",
        "sig0123",
        "cliapikey",
    ):
        assert secret not in out, secret
    assert "redis://****:****@127.0.0.1:1/0?token=****" in out
    assert "X-Amz-Signature=****" in out
    assert "WARN  MEDIAJOBS_IMPORT_PUBLIC_CIDRS is a test-only setting" in out
    # A warning, not a failure: the count of failed checks is the broker's and the queues', not this one.
    assert "FAIL  broker" in out
