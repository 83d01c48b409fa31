"""deploy/Dockerfile built and run for real, with podman (issue 17).

No registry is reachable here, so the base image (`python:3.11-slim-bookworm`) is the stand-in that
scripts/container-base.sh makes from Debian's packages when it is missing. The image is then built with the
flags that script's header gives, and run: `mediajobs --help`; a worker in the container taking its jobs from
this test's Redis, recording them in its PostgreSQL and storing in its S3 server (host networking, every
server on loopback: no name is resolved); a job submitted through an API on the host, run by that worker;
`mediajobs doctor` in the container, which passes only when the database, broker, storage, ffmpeg, ffprobe,
yt-dlp and a worker for every queue are all there. Where podman cannot run (not root, no runc, no package
mirror or PyPI), the test skips saying why.

It prints how long the base image and the build took (a build with every layer cached takes seconds).
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediajobs.testing.s3 import AWS_ENV, create_bucket
from mediajobs.testing.servers import PostgresServer, RedisServer, wait_for
from mediajobs.testing.stacks import CHECKOUT, Stack, base_env

BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
IMAGE = "localhost/mediajobs-test:latest"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# What this kind of machine needs (scripts/container-base.sh): runc with cgroupfs, as crun cannot run here.
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
# podman's default rlimits are above what a process without CAP_SYS_RESOURCE (this machine's root) may set:
# runc then fails with "error setting rlimit type 6/7". Limits within ours, and ample for a worker.
_NOFILE = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
RUN = ["--ulimit", f"nofile={_NOFILE}:{_NOFILE}", "--ulimit", "nproc=4096:4096"]
# How a build that could not reach a package mirror or PyPI says so.
OFFLINE = (
    "Temporary failure in name resolution",
    "Network is unreachable",
    "NewConnectionError",
    "Could not resolve",
    "Failed to fetch",
    "No matching distribution found",
)


def podman(*args: str, timeout_s: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout_s)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} exited {done.returncode}: {done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def image() -> str:
    if os.geteuid() != 0:
        pytest.skip("podman on this machine needs root (rootful, runc with cgroupfs)")
    started = time.monotonic()
    base = subprocess.run(
        ["bash", str(CHECKOUT / "scripts" / "container-base.sh")], capture_output=True, text=True, timeout=900
    )
    if base.returncode != 0:
        pytest.skip(f"no base image, podman or runc here: {(base.stdout + base.stderr)[-600:]}")
    print(f"\nbase image: {base.stdout.strip()} in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    build = podman(
        "build",
        "--network=host",
        "--env",
        f"PIP_CERT={CA_BUNDLE}",
        "-v",
        f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
        "-f",
        str(CHECKOUT / "deploy" / "Dockerfile"),
        "-t",
        IMAGE,
        str(CHECKOUT),
        timeout_s=1200,
        check=False,
    )
    if build.returncode != 0:
        said = build.stdout + build.stderr
        if any(sign in said for sign in OFFLINE):
            pytest.skip(f"the build could not reach Debian's mirror or PyPI: {said[-600:]}")
        raise AssertionError(f"deploy/Dockerfile did not build: {said[-4000:]}")
    print(f"image built in {time.monotonic() - started:.1f} s")
    return IMAGE


@pytest.fixture
def servers_env(
    postgres_server: PostgresServer, redis_server: RedisServer, moto_endpoint: str
) -> dict[str, str]:
    """This test's PostgreSQL, Redis and S3, all on loopback, as the container and the host see them."""
    return {
        "MEDIAJOBS_DATABASE_URL": postgres_server.create_database(f"container_{uuid.uuid4().hex[:8]}"),
        "MEDIAJOBS_BROKER_URL": redis_server.new_url(),
        "MEDIAJOBS_STORAGE_URL": f"s3://{create_bucket(moto_endpoint)}",
        "MEDIAJOBS_S3_ENDPOINT_URL": moto_endpoint,
        "MEDIAJOBS_API_KEYS": f"container-test-{uuid.uuid4().hex}",
        **AWS_ENV,
    }


@pytest.fixture
def container_worker(image: str, servers_env: dict[str, str]) -> Iterator[str]:
    """`mediajobs worker` in the container, on the host's network, run as deploy/compose.yaml's jailing recipe
    says (root, CAP_SYS_ADMIN, the engine's default seccomp profile); its name."""
    name = f"mediajobs-test-worker-{os.getpid()}"
    podman("rm", "-f", name, check=False)
    env = [arg for key, value in servers_env.items() for arg in ("-e", f"{key}={value}")]
    jailing = ["--user", "root", "--cap-add", "SYS_ADMIN"]
    worker = ["mediajobs", "worker", "-c", "1"]
    podman("run", "-d", "--name", name, "--network=host", *RUN, *jailing, *env, image, *worker)
    try:

        def ready() -> bool:
            logs = podman("logs", name, check=False)
            if podman("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip() != "true":
                raise AssertionError(f"the worker exited: {logs.stdout[-2000:]}{logs.stderr[-2000:]}")
            return "ready." in logs.stdout + logs.stderr

        wait_for(ready, timeout_s=120, message="the worker in the container to be ready")
        yield name
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


def test_the_image_runs_mediajobs(image: str) -> None:
    done = podman("run", "--rm", "--network=none", *RUN, image, "mediajobs", "--help")
    assert "worker" in done.stdout and "doctor" in done.stdout, done.stdout
    user = podman("run", "--rm", "--network=none", *RUN, image, "id", "-u").stdout.strip()
    assert user == "10001"


def test_a_worker_in_the_container_runs_jobs_jailed_and_doctor_passes(
    image: str,
    container_worker: str,
    servers_env: dict[str, str],
    tmp_path: Path,
) -> None:
    # What the recipe gives the worker's children in this engine: namespaces, mounts, Landlock.
    levels = podman(
        "exec",
        container_worker,
        "python",
        "-c",
        "from mediajobs import confine, sandbox; "
        "print(sandbox.netns_available(), sandbox.mounts_available(), confine.landlock_abi() > 0)",
    )
    assert levels.stdout.split() == ["True", "True", "True"], levels.stdout
    clip = tmp_path / "clip.mp4"
    make = [
        "ffmpeg",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=d=2:s=320x240:r=25",
        "-pix_fmt",
        "yuv420p",
    ]
    subprocess.run([*make, str(clip)], check=True, timeout=60)
    stack = Stack(tmp_path, base_env(**servers_env))
    stack.start_api()
    try:
        headers = {"Authorization": f"Bearer {servers_env['MEDIAJOBS_API_KEYS']}"}
        with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as api:
            job = api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 2, "y": 3}}).json()
            done: Any = wait_for(
                lambda: _ended(api, f"/api/v1/jobs/{job['id']}"), timeout_s=120, message="test.add"
            )
            assert done["state"] == "succeeded" and done["result"] == 5, done
            # A media job: ffprobe and ffmpeg run jailed by the container's worker.
            created = api.post(
                "/api/v1/media/uploads", content=clip.read_bytes(), headers={"content-type": "video/mp4"}
            )
            assert created.status_code in (201, 202), created.text
            media: Any = wait_for(
                lambda: _ended(api, f"/api/v1/media/{created.json()['media']['id']}"),
                timeout_s=180,
                message="the upload to be processed in the container",
            )
            assert media["state"] == "ready", media

        # The doctor in the container is pointed at the API this test started (on the host's loopback).
        doctor_env = {**servers_env, "MEDIAJOBS_API_URL": stack.api_url}
        env = [arg for key, value in doctor_env.items() for arg in ("-e", f"{key}={value}")]
        doctor = podman(
            "run",
            "--rm",
            "--network=host",
            *RUN,
            *env,
            image,
            "mediajobs",
            "doctor",
            timeout_s=180,
            check=False,
        )
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        for check in ("api", "database", "broker", "storage", "ffmpeg", "yt-dlp", "queues"):
            assert f"ok    {check}" in doctor.stdout, doctor.stdout
    finally:
        stack.stop()


def _ended(api: httpx.Client, path: str) -> dict[str, Any] | None:
    current: dict[str, Any] = api.get(path).json()
    return current if current["state"] in ("succeeded", "failed", "cancelled", "ready") else None
