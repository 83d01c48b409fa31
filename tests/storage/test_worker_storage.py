"""A worker host that cannot use the storage fails its jobs with a stable code, soon; /readyz names it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from mediajobs.testing.s3 import AWS_ENV, create_bucket
from mediajobs.testing.servers import free_port, wait_for
from mediajobs.testing.stacks import Stack
from tests.clips import generate_clip
from tests.conftest import MakeStack
from tests.media_api.helpers import upload, wait_job

REGION = "us-east-1"


@pytest.fixture(scope="module")
def checked_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 in a process of its own with IAM authentication on: unknown keys and bad signatures are 403.

    (The session's shared moto server accepts any credentials.) The first three requests, unauthenticated,
    create a user allowed s3:*; its key pair and a bucket are what the stack gets.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("checked-s3") / "moto.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{endpoint}/moto-api/").status_code == 200, message="moto")
        setup = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup", "region_name": REGION}
        iam = boto3.client("iam", endpoint_url=endpoint, **setup)
        iam.create_user(UserName="mediajobs")
        key = iam.create_access_key(UserName="mediajobs")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="mediajobs", PolicyName="s3", PolicyDocument=json.dumps(policy))
        env = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": REGION,
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        s3.create_bucket(Bucket="mj-checked")
        yield {**env, "MEDIAJOBS_S3_ENDPOINT_URL": endpoint, "MEDIAJOBS_STORAGE_URL": "s3://mj-checked/site"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return generate_clip(tmp_path / "clip.mp4", duration=1.0, width=160, height=120)


def worker_host(stack: Stack, directory: Path, **env: str) -> tuple[Stack, str]:
    """A worker started with the stack's configuration but `env` in place of some of it; and its node name."""
    directory.mkdir()
    host = Stack(directory, {**stack.env, **env})
    proc = host.start_worker("io,cpu,default", 1)
    return host, f"io+cpu+default.{proc.pid}@{socket.gethostname()}"


def fails_its_upload(api: httpx.Client, clip: Path) -> tuple[dict[str, Any], float]:
    """Upload `clip` (the API can store it); the processing job as it ended, and how long that took."""
    started = time.monotonic()
    job = upload(api, clip)["job"]
    ended = wait_job(api, job["id"], "failed", "succeeded", timeout_s=60)
    return ended, time.monotonic() - started


def storage_problems(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/readyz")
    # The API itself can use the storage: it stays ready, and names the worker that cannot.
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}
    problems: list[dict[str, Any]] = response.json()["storage_problems"]
    return problems


def test_a_worker_with_wrong_credentials_fails_jobs_with_storage_denied_and_readyz_and_doctor_name_it(
    make_stack: MakeStack, checked_s3: dict[str, str], clip: Path, tmp_path: Path
) -> None:
    stack = make_stack(workers=0, extra_env=checked_s3)
    host, name = worker_host(stack, tmp_path / "hostB", AWS_SECRET_ACCESS_KEY="not-the-secret")
    try:
        with stack.client() as api:
            job, took_s = fails_its_upload(api, clip)
            assert job["state"] == "failed" and job["error"]["code"] == "storage_denied", job
            assert "AWS_SECRET_ACCESS_KEY" in job["error"]["message"]
            # Not worth retrying (the same key is refused every time): one attempt, failed at once, as the
            # job's own times tell (the wall clock here also counts the upload, and a CI machine at the end of
            # a busy run took 16.6 s for both).
            worked = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
            assert job["attempt"] == 1 and worked.total_seconds() < 10, (worked, took_s)
            wait_for(
                lambda: [p for p in storage_problems(api) if p["node"] == f"worker {name}"],
                timeout_s=10,
                message="/readyz to name the worker",
            )
            assert {p["code"] for p in storage_problems(api)} == {"storage_denied"}
        doctor = subprocess.run(
            [sys.executable, "-m", "mediajobs", "doctor"],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert f"worker {name}: storage fails with storage_denied" in doctor.stdout, doctor.stdout
        for secret in ("not-the-secret", checked_s3["AWS_SECRET_ACCESS_KEY"]):
            assert secret not in doctor.stdout
        assert doctor.returncode == 1
        assert not [p for p in Path(stack.env["MEDIAJOBS_TEMP_DIR"]).rglob("*") if p.is_file()]
    finally:
        host.stop()


def test_a_worker_whose_s3_endpoint_is_closed_fails_jobs_with_storage_unavailable_in_bounded_time(
    make_stack: MakeStack, moto_endpoint: str, clip: Path, tmp_path: Path
) -> None:
    shared = {
        **AWS_ENV,
        "MEDIAJOBS_S3_ENDPOINT_URL": moto_endpoint,
        "MEDIAJOBS_STORAGE_URL": f"s3://{create_bucket(moto_endpoint)}/site",
    }
    stack = make_stack(workers=0, extra_env=shared)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    host, name = worker_host(stack, tmp_path / "hostC", MEDIAJOBS_S3_ENDPOINT_URL=closed)
    try:
        with stack.client() as api:
            job, took_s = fails_its_upload(api, clip)
            assert job["state"] == "failed" and job["error"]["code"] == "storage_unavailable", job
            assert closed in job["error"]["message"]
            # Worth retrying (an outage may pass): every attempt, each failing within seconds, never a hang.
            assert job["attempt"] == job["max_attempts"] and took_s < 30
            problems = storage_problems(api)
            assert [(p["node"], p["code"]) for p in problems] == [(f"worker {name}", "storage_unavailable")]
    finally:
        host.stop()
