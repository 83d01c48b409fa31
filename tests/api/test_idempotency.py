"""`Idempotency-Key`: scoped to the caller's API key, and bound to the payload it was first used with.

draft-ietf-httpapi-idempotency-key-header: a key reused with a different payload is 422; keys are looked up
by a composite of the key and who sent it.
"""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import MakeClient, TestClient

JOB = {"kind": "test.add", "params": {"x": 1, "y": 2}}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(make_client: MakeClient) -> TestClient:
    return make_client(api_keys="alice-key,bob-key")


def _jobs(client: TestClient, key: str = "alice-key") -> list[str]:
    return [job["id"] for job in client.get("/api/v1/jobs", headers=_auth(key)).json()["items"]]


def test_the_same_key_and_body_answer_the_first_answer(keyed: TestClient) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex, **_auth("alice-key")}
    first = keyed.post("/api/v1/jobs", json=JOB, headers=key)
    # The same payload spelled differently (order, spacing) is the same payload.
    again = keyed.post(
        "/api/v1/jobs",
        content=b'{ "params": {"y": 2, "x": 1},  "kind": "test.add" }',
        headers={**key, "Content-Type": "application/json"},
    )
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert _jobs(keyed) == [first.json()["id"]]


def test_the_same_key_with_another_body_is_422(keyed: TestClient) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex, **_auth("alice-key")}
    first = keyed.post("/api/v1/jobs", json=JOB, headers=key)
    other = keyed.post("/api/v1/jobs", json={**JOB, "params": {"x": 5, "y": 5}}, headers=key)
    assert first.status_code == 202
    assert other.status_code == 422, other.text
    assert other.headers["content-type"] == "application/problem+json"
    problem = other.json()
    assert problem["type"] == "urn:mediajobs:problem:idempotency-key-reused"
    assert "Idempotency-Key" in problem["detail"] and problem["errors"][0]["field"] == "Idempotency-Key"
    assert _jobs(keyed) == [first.json()["id"]]  # nothing new
    # ...and the first payload still answers the first answer.
    assert keyed.post("/api/v1/jobs", json=JOB, headers=key).json() == first.json()


def test_keys_are_scoped_to_the_callers_api_key(keyed: TestClient) -> None:
    shared = uuid.uuid4().hex
    alice = keyed.post("/api/v1/jobs", json=JOB, headers={"Idempotency-Key": shared, **_auth("alice-key")})
    bob = keyed.post("/api/v1/jobs", json=JOB, headers={"Idempotency-Key": shared, **_auth("bob-key")})
    assert alice.status_code == bob.status_code == 202
    assert bob.json()["id"] != alice.json()["id"], "bob got alice's answer"
    assert "idempotent-replayed" not in bob.headers
    # Another body under bob's key is not a reuse of alice's.
    other = {**JOB, "params": {"x": 9, "y": 9}}
    carol = keyed.post("/api/v1/jobs", json=other, headers={"Idempotency-Key": "k2", **_auth("bob-key")})
    dave = keyed.post("/api/v1/jobs", json=JOB, headers={"Idempotency-Key": "k2", **_auth("alice-key")})
    assert carol.status_code == dave.status_code == 202


def test_without_auth_every_caller_shares_one_scope(open_client: TestClient) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = open_client.post("/api/v1/jobs", json=JOB, headers=key)
    # A bearer header means nothing without keys configured: the same scope.
    again = open_client.post("/api/v1/jobs", json=JOB, headers={**key, **_auth("whoever")})
    assert again.json() == first.json()
    assert open_client.post("/api/v1/jobs", json={**JOB, "priority": 9}, headers=key).status_code == 422


def test_imports_bind_the_key_to_their_body(make_client: MakeClient) -> None:
    client = make_client(import_allow_private=True)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"url": "http://127.0.0.1:9/a.mp4"}
    first = client.post("/api/v1/media/imports", json=body, headers=key)
    assert first.status_code == 202, first.text
    assert client.post("/api/v1/media/imports", json=body, headers=key).json() == first.json()
    other = client.post("/api/v1/media/imports", json={"url": "http://127.0.0.1:9/b.mp4"}, headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    assert len(client.get("/api/v1/media").json()["items"]) == 1


# How an MP4 file starts (uploads that do not start as media are refused before anything else).
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)


def test_uploads_bind_the_key_to_the_file(open_client: TestClient) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    url = "/api/v1/media/uploads?filename=a.mp4"
    first = open_client.post(url, content=MP4 + b"the same bytes", headers=key)
    assert first.status_code == 202, first.text
    # The same file sent as a form (another boundary, another framing) is the same upload.
    same = MP4 + b"the same bytes"
    form = open_client.post(url, files={"file": ("a.mp4", same, "video/mp4")}, headers=key)
    assert form.status_code == 202 and form.json() == first.json(), form.text
    other = open_client.post(url, content=MP4 + b"other bytes!!!", headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    renamed = open_client.post("/api/v1/media/uploads?filename=b.mp4", content=same, headers=key)
    assert renamed.status_code == 422
    assert len(open_client.get("/api/v1/media").json()["items"]) == 1
