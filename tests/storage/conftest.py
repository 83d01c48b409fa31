from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from mediajobs.storage import Storage
from mediajobs.storage.backends.local import LocalStorage
from mediajobs.storage.backends.s3 import S3Storage
from mediajobs.testing.s3 import AWS_ENV, AWS_OVERRIDES, CREDENTIALS, create_bucket

# S3's smallest legal part (moto enforces it too), so multipart paths run with ~11 MiB of data.
PART_SIZE = 5 * 1024 * 1024

Leftovers = Callable[[], list[str]]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Test credentials in the standard AWS_* variables, and no profile or token to override them."""
    for name in AWS_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    return dict(AWS_ENV)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    """The same storage suite runs against a local directory and a real S3 server over HTTP."""
    if backend == "local":
        return LocalStorage(tmp_path / "storage", part_size_bytes=PART_SIZE)
    request.getfixturevalue("aws_env")
    endpoint: str = request.getfixturevalue("moto_endpoint")
    # A key prefix in the URL must be invisible to callers; every S3 test runs with one.
    return S3Storage(
        bucket=create_bucket(endpoint),
        prefix="tenant/one",
        endpoint_url=endpoint,
        addressing_style="path",
        part_size_bytes=PART_SIZE,
    )


@pytest.fixture
def leftovers(storage: Storage) -> Leftovers:
    """What aborts and deletes could leak: any file under the local root, or unfinished S3 uploads."""

    def find() -> list[str]:
        if isinstance(storage, LocalStorage):
            return [os.path.join(d, f) for d, _, files in os.walk(storage.root) for f in files]
        assert isinstance(storage, S3Storage)
        client = boto3.client("s3", endpoint_url=storage.endpoint_url, **CREDENTIALS)
        uploads = client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
        return [upload["Key"] for upload in uploads]

    return find
