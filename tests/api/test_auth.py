"""API keys: checked before routing or body parsing, as bytes; signed playback tokens open files only."""

from __future__ import annotations

import time
import uuid

import pytest

from mediajobs.config import Settings
from mediajobs.media import playback
from tests.api.conftest import KEY, MakeClient, TestClient

BEARER = {"Authorization": f"Bearer {KEY}"}
SIGNER = Settings(api_keys=f"{KEY},second-key")


def assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status and body["title"] and body["detail"]
    return body  # type: ignore[no-any-return]


def test_every_api_path_needs_the_key(keyed_client: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/media"),
        ("GET", "/api/v1/kinds"),
        ("GET", "/api/v1/no-such-route"),
        ("DELETE", f"/api/v1/jobs/{uuid.uuid4()}"),
    ]:
        body = assert_problem(keyed_client.request(method, path), 401)
        assert "missing Authorization header" in str(body["detail"])
    assert keyed_client.get("/api/v1/jobs", headers=BEARER).status_code == 200
    # Any configured key opens the API, not only the first.
    assert keyed_client.get("/api/v1/jobs", headers={"Authorization": "Bearer second-key"}).status_code == 200


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"Bearer",
        b"Bearer ",
        b"Basic " + KEY.encode(),
        b"Bearer k\xe9y",
        b"Bearer " + KEY.encode() + b"\xe9",
        b"Bearer \xff\xfe",
        b"Bearer " + b"x" * 6000,
        b"Bearer" + KEY.encode(),
        b"bearer wrong-key",
    ],
    ids=[
        "empty",
        "scheme-only",
        "scheme-space",
        "basic",
        "non-ascii",
        "key-plus-byte",
        "binary",
        "long",
        "no-space",
        "wrong",
    ],
)
def test_malformed_or_wrong_tokens_are_401_not_500(keyed_client: TestClient, value: bytes) -> None:
    response = keyed_client.get("/api/v1/jobs", headers=[(b"authorization", value)])
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_scheme_is_case_insensitive(keyed_client: TestClient) -> None:
    assert keyed_client.get("/api/v1/jobs", headers={"Authorization": f"bearer {KEY}"}).status_code == 200


def test_two_authorization_headers_are_refused(keyed_client: TestClient) -> None:
    headers = [(b"authorization", f"Bearer {KEY}".encode()), (b"authorization", b"Bearer other")]
    body = assert_problem(keyed_client.get("/api/v1/jobs", headers=headers), 401)
    assert "more than one Authorization header" in str(body["detail"])


def test_auth_is_checked_before_the_body_is_read(keyed_client: TestClient) -> None:
    # Malformed JSON, a body that fails validation and one over the JSON body limit: all plain 401s.
    for content in (b"{not json", b'{"kind": 5}', b"[" * (2 * 1024 * 1024)):
        response = keyed_client.post(
            "/api/v1/jobs", content=content, headers={"Content-Type": "application/json"}
        )
        body = assert_problem(response, 401)
        assert "errors" not in body


def test_metrics_need_the_key_when_auth_is_on(keyed_client: TestClient) -> None:
    assert_problem(keyed_client.get("/metrics"), 401)
    response = keyed_client.get("/metrics", headers=BEARER)
    assert response.status_code == 200 and "mediajobs_jobs" in response.text


def test_authenticated_answers_are_never_publicly_cacheable(keyed_client: TestClient) -> None:
    for response in (keyed_client.get("/api/v1/jobs", headers=BEARER), keyed_client.get("/api/v1/jobs")):
        cache = response.headers["cache-control"]
        assert "public" not in cache and ("no-store" in cache or "private" in cache)


def files_url(media_id: str, token: str | None, path: str = "hls/master.m3u8") -> str:
    return f"/api/v1/media/{media_id}/files/{path}" + (f"?{playback.QUERY}={token}" if token else "")


def test_a_valid_playback_token_opens_that_assets_files_without_a_key(keyed_client: TestClient) -> None:
    media_id = str(uuid.uuid4())
    token = playback.sign(SIGNER, media_id)
    assert token
    # Past the gate: the asset does not exist, so the route itself answers 404 (not 401).
    for method in ("GET", "HEAD"):
        response = keyed_client.request(method, files_url(media_id, token))
        assert response.status_code == 404, response.text
    # The id in any spelling a UUID allows is the same asset.
    assert keyed_client.get(files_url(media_id.upper(), token)).status_code == 404


def test_bad_expired_or_foreign_playback_tokens_are_403(keyed_client: TestClient) -> None:
    media_id = str(uuid.uuid4())
    other = playback.sign(SIGNER, str(uuid.uuid4()))
    expired = playback.sign(SIGNER, media_id, now=time.time() - 2 * SIGNER.playback_token_ttl_s)
    unkeyed = playback.sign(Settings(api_keys="not-our-key"), media_id)
    for token in (other, expired, unkeyed, "garbage", "1.", "9" * 200 + ".x", "%E9"):
        body = assert_problem(keyed_client.get(files_url(media_id, token)), 403)
        assert "token" in str(body["detail"])
    valid = playback.sign(SIGNER, media_id)
    assert_problem(keyed_client.get(files_url("not-a-uuid", valid)), 403)


def test_a_playback_token_opens_nothing_but_files(keyed_client: TestClient) -> None:
    media_id = str(uuid.uuid4())
    token = playback.sign(SIGNER, media_id)
    assert_problem(keyed_client.get(f"/api/v1/media/{media_id}?{playback.QUERY}={token}"), 401)
    assert_problem(keyed_client.delete(f"/api/v1/media/{media_id}?{playback.QUERY}={token}"), 401)
    assert_problem(keyed_client.post(files_url(media_id, token)), 401)
    # Without a token, files need the key as everything else does.
    assert_problem(keyed_client.get(files_url(media_id, None)), 401)


def test_without_keys_the_api_is_open(make_client: MakeClient) -> None:
    client = make_client()
    response = client.get("/api/v1/jobs")
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
