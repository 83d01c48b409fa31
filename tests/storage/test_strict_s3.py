"""The strict S3 front answers CORS like a fresh bucket, and then exactly as the bucket's rules say."""

from __future__ import annotations

from typing import Any

import boto3
import httpx
import pytest

from mediajobs.testing.s3 import CREDENTIALS, create_bucket
from tests.storage.strict_s3 import strict_s3_endpoint

__all__ = ["strict_s3_endpoint"]

APP = "http://app.example:8000"


@pytest.fixture
def bucket(strict_s3_endpoint: str) -> tuple[Any, str, str]:
    """A fresh bucket holding one segment, a client through the front, and the segment's signed URL."""
    client = boto3.client("s3", endpoint_url=strict_s3_endpoint, **CREDENTIALS)
    name = create_bucket(strict_s3_endpoint)
    client.put_object(Bucket=name, Key="seg.ts", Body=b"x" * 1000, ContentType="video/mp2t")
    url = client.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "seg.ts"}, ExpiresIn=60)
    return client, name, url


def preflight(url: str, origin: str = APP, method: str = "GET", headers: str = "") -> httpx.Response:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return httpx.options(url, headers=asked)


def cors_of(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def test_fresh_bucket_refuses_preflights_and_answers_reads_without_cors_headers(
    bucket: tuple[Any, str, str], moto_endpoint: str
) -> None:
    _, _, url = bucket
    response = preflight(url, headers="range")
    assert response.status_code == 403, response.text
    assert "CORS is not enabled for this bucket" in response.text
    read = httpx.get(url, headers={"Origin": APP, "Range": "bytes=0-9"})
    assert read.status_code == 206 and read.content == b"x" * 10
    assert cors_of(read) == {}
    # What the front is for: moto alone lets any origin read the bucket.
    direct = httpx.get(url.replace(url.split("/")[2], moto_endpoint.split("/")[2]), headers={"Origin": APP})
    assert direct.status_code == 200
    assert direct.headers.get("access-control-allow-origin") in ("*", APP)


def test_bucket_rules_allow_exactly_the_origins_methods_and_headers_they_name(
    bucket: tuple[Any, str, str],
) -> None:
    client, name, url = bucket
    rule = {
        "AllowedOrigins": [APP, "https://*.example.org"],
        "AllowedMethods": ["GET", "HEAD"],
        "AllowedHeaders": ["range", "x-amz-*"],
        "ExposeHeaders": ["Content-Range"],
        "MaxAgeSeconds": 600,
    }
    client.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [rule]})

    allowed = preflight(url, headers="Range, X-Amz-Date")
    assert allowed.status_code == 200, allowed.text
    assert cors_of(allowed) == {
        "access-control-allow-origin": APP,
        "access-control-allow-methods": "GET, HEAD",
        "access-control-allow-headers": "Range, X-Amz-Date",
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "Content-Range",
        "access-control-max-age": "600",
    }
    assert preflight(url, origin="https://cdn.example.org").status_code == 200
    for refused in (
        preflight(url, origin="http://evil.example"),
        preflight(url, origin="https://example.org"),  # the wildcard needs a subdomain
        preflight(url, method="PUT"),
        preflight(url, headers="range, x-custom"),
    ):
        assert refused.status_code == 403, refused.request.headers
        assert "This CORS request is not allowed" in refused.text

    read = httpx.get(url, headers={"Origin": APP})
    assert read.headers["access-control-allow-origin"] == APP
    assert read.headers["access-control-expose-headers"] == "Content-Range"
    assert cors_of(httpx.get(url, headers={"Origin": "http://evil.example"})) == {}
    assert cors_of(httpx.get(url)) == {}
