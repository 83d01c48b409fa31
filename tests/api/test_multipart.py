"""Malformed multipart upload bodies are 400s that say what to send, and leave nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import MakeClient

GOOD_PART = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
# The first bytes of a Matroska file: what the upload route lets through to storage (text would be a 415).
MEDIA = b"\x1a\x45\xdf\xa3"


@pytest.mark.parametrize(
    "body",
    [
        b"not a multipart body at all",
        b"--B\r\nno header colon here\r\n\r\ndata\r\n--B--\r\n",
        b"--Bxx\r\n",
        GOOD_PART + b"x" * 100,  # cut off before the closing boundary
        GOOD_PART + MEDIA + b"x" * (3 * 1024 * 1024),  # cut off after more than one stored chunk
        b"--B\r\n" + b"X-Long: " + b"h" * 20000 + b"\r\n\r\n",
    ],
    ids=["garbage", "bad-header", "bad-boundary", "truncated", "truncated-large", "huge-header"],
)
def test_malformed_multipart_is_a_400_and_stores_nothing(
    make_client: MakeClient, tmp_path: Path, body: bytes
) -> None:
    client = make_client()
    response = client.post(
        "/api/v1/media/uploads", content=body, headers={"Content-Type": "multipart/form-data; boundary=B"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "multipart" in response.json()["detail"]
    stored = [p for p in (tmp_path / "data0" / "storage").rglob("*") if p.is_file()]
    assert stored == []
    assert client.get("/api/v1/media").json()["items"] == []


def test_a_well_formed_form_is_still_accepted(make_client: MakeClient) -> None:
    client = make_client()
    body = GOOD_PART + MEDIA + b"o\r\n--B--\r\n"
    response = client.post(
        "/api/v1/media/uploads", content=body, headers={"Content-Type": "multipart/form-data; boundary=B"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["media"]["original"]["size"] == 5
