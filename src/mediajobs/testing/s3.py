"""An S3 server speaking real HTTP (moto's server mode) on loopback, and the credentials it takes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

# moto accepts any credentials; fixed ones keep tests independent of the developer's AWS setup.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# What would override AWS_ENV in a process: a developer's profile or session.
AWS_OVERRIDES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def start_moto_server() -> tuple[str, Callable[[], None]]:
    """Start moto on a free loopback port; returns its endpoint URL and a function that stops it."""
    # werkzeug would otherwise print one access-log line per S3 request.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}", server.stop


def create_bucket(endpoint_url: str, name: str | None = None) -> str:
    """Create a bucket (a fresh unique one unless named) and return its name."""
    bucket = name or f"mj-test-{uuid.uuid4().hex[:12]}"
    client(endpoint_url).create_bucket(Bucket=bucket)
    return bucket


@lru_cache
def client(endpoint_url: str) -> Any:
    """A boto3 S3 client of the test credentials (building one costs ~0.3 s: one per endpoint)."""
    return boto3.client("s3", endpoint_url=endpoint_url, **CREDENTIALS)


def with_test_credentials(env: dict[str, str]) -> dict[str, str]:
    """`env` with the test credentials in the standard AWS_* variables and nothing to override them."""
    return {**{k: v for k, v in env.items() if k not in AWS_OVERRIDES}, **AWS_ENV}
