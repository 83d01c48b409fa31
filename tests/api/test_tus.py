"""The tus 1.0.0 server at /api/v1/uploads, in-process: what the protocol names for every request and refusal.

Clients no one here wrote, cut connections, races and two API processes are in tests/media_api/test_tus_*.py.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from mediajobs.media import assets
from mediajobs.testing.files import MEDIA_MAGIC, media_like
from tests.api.conftest import KEY, ORIGIN, MakeClient, TestClient

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
DATA = media_like(300_000)
LIMIT = 1_000_000


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def metadata(**pairs: str) -> str:
    return ",".join(f"{key} {b64(value)}" for key, value in pairs.items())


def stored_files(client: TestClient) -> list[str]:
    root = Path(client.app.state.settings.effective_storage_url.removeprefix("file://"))  # type: ignore[attr-defined]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def create(client: TestClient, length: int = len(DATA), **headers: str) -> Any:
    answer = client.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(filename="clip.mp4"),
            **headers,
        },
    )
    assert answer.status_code == 201, answer.text
    return answer


def patch(client: TestClient, url: str, offset: int, body: bytes, **headers: str) -> Any:
    return client.patch(
        url, headers={**TUS, "Upload-Offset": str(offset), "Content-Type": OCTETS, **headers}, content=body
    )


def assert_problem(answer: Any, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status
    for word in words:
        assert word in body["detail"], body["detail"]


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client(max_upload_bytes=LIMIT)


def test_options_advertises_version_extensions_max_size_and_checksums(client: TestClient) -> None:
    answer = client.options("/api/v1/uploads")
    assert answer.status_code == 204
    assert answer.headers["tus-version"] == "1.0.0"
    assert answer.headers["tus-resumable"] == "1.0.0"
    extensions = set(answer.headers["tus-extension"].split(","))
    assert extensions >= {"creation", "creation-with-upload", "termination", "expiration", "checksum"}
    assert answer.headers["tus-max-size"] == str(LIMIT)
    assert "sha1" in answer.headers["tus-checksum-algorithm"].split(",")


def test_an_upload_in_pieces_becomes_the_original_of_an_asset_being_processed(client: TestClient) -> None:
    created = create(client)
    url, media_id = created.headers["location"], created.headers["mediajobs-media-id"]
    assert url.startswith("/api/v1/uploads/")
    assert "GMT" in created.headers["upload-expires"]
    media = client.get(f"/api/v1/media/{media_id}").json()
    assert media["state"] == "uploading" and media["title"] == "clip"
    assert media["upload"]["offset"] == 0 and media["upload"]["length"] == len(DATA)
    assert media["upload"]["url"].endswith(url)

    first = patch(client, url, 0, DATA[:100_000])
    assert first.status_code == 204, first.text
    assert first.headers["upload-offset"] == "100000" and first.headers["tus-resumable"] == "1.0.0"
    assert "GMT" in first.headers["upload-expires"]
    media = client.get(f"/api/v1/media/{media_id}").json()
    assert (media["state"], media["upload"]["offset"], media["upload"]["progress"]) == (
        "uploading",
        100_000,
        33.33,
    )
    assert [m["id"] for m in client.get("/api/v1/media", params={"state": "uploading"}).json()["items"]] == [
        media_id
    ]

    head = client.head(url, headers=TUS)
    assert head.status_code == 200
    assert (head.headers["upload-offset"], head.headers["upload-length"]) == ("100000", str(len(DATA)))
    assert head.headers["cache-control"] == "no-store"
    assert head.headers["upload-metadata"] == metadata(filename="clip.mp4")

    last = patch(client, url, 100_000, DATA[100_000:])
    assert last.status_code == 204 and last.headers["upload-offset"] == str(len(DATA))
    media = client.get(f"/api/v1/media/{media_id}").json()
    assert media["state"] == "processing" and media["upload"] is None
    assert media["original"] == {"size": len(DATA), "content_type": "video/mp4", "filename": "clip.mp4"}
    job = client.get(f"/api/v1/jobs/{media['jobs'][0]}").json()
    assert (job["kind"], job["state"], job["params"]) == (
        "media.process",
        "queued",
        {"pipeline": list(assets.DEFAULT_PIPELINE)},
    )
    stored = stored_files(client)
    assert stored == [f"media/{media_id}/original/clip.mp4"]
    root = Path(client.app.state.settings.effective_storage_url.removeprefix("file://"))  # type: ignore[attr-defined]
    assert hashlib.sha256((root / stored[0]).read_bytes()).digest() == hashlib.sha256(DATA).digest()
    assert client.head(url, headers=TUS).headers["upload-offset"] == str(len(DATA))


def test_creation_with_upload_stores_the_first_bytes_at_once(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/uploads",
        headers={**TUS, "Upload-Length": str(len(DATA)), "Content-Type": OCTETS},
        content=DATA[:1000],
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["upload-offset"] == "1000"
    assert client.head(answer.headers["location"], headers=TUS).headers["upload-offset"] == "1000"


def test_a_whole_file_on_creation_is_processed_at_once(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/uploads",
        headers={**TUS, "Upload-Length": str(len(DATA)), "Content-Type": OCTETS, "Upload-Metadata": ""},
        content=DATA,
    )
    assert answer.status_code == 201 and answer.headers["upload-offset"] == str(len(DATA))
    media = client.get(f"/api/v1/media/{answer.headers['mediajobs-media-id']}").json()
    assert media["state"] == "processing"
    assert media["original"]["filename"] is None and media["original"]["size"] == len(DATA)


@pytest.mark.parametrize("version", [None, "0.2.2", "1.0"])
def test_requests_without_tus_1_0_0_are_refused_with_412(client: TestClient, version: str | None) -> None:
    url = create(client).headers["location"]
    sent = {"Tus-Resumable": version} if version else {}
    for answer in (
        client.post("/api/v1/uploads", headers={**sent, "Upload-Length": "10"}),
        client.head(url, headers=sent),
        client.patch(url, headers={**sent, "Upload-Offset": "0", "Content-Type": OCTETS}, content=b"x"),
        client.delete(url, headers=sent),
    ):
        assert answer.status_code == 412, answer.text
        assert answer.headers["tus-version"] == "1.0.0"
        if answer.request.method != "HEAD":
            assert_problem(answer, 412, "Tus-Resumable: 1.0.0")
    assert client.head(url, headers=TUS).headers["upload-offset"] == "0"  # nothing happened to it


def test_upload_length_over_the_limit_is_413_before_anything_exists(client: TestClient) -> None:
    before = stored_files(client)
    answer = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(LIMIT + 1)})
    assert_problem(answer, 413, "over the limit of 976.6 KiB (1,000,000 bytes", "MEDIAJOBS_MAX_UPLOAD_BYTES")
    assert client.get("/api/v1/media").json()["items"] == []
    assert stored_files(client) == before


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, ["Upload-Length", "missing"]),
        ({"Upload-Length": "ten"}, ["Upload-Length", "non-negative integer"]),
        ({"Upload-Length": "-5"}, ["Upload-Length"]),
        ({"Upload-Length": "0"}, ["empty"]),
        ({"Upload-Length": "10", "Upload-Defer-Length": "1"}, ["Upload-Defer-Length"]),
        ({"Upload-Length": "10", "Upload-Metadata": "filename not*base64!"}, ["filename", "base64"]),
        ({"Upload-Length": "10", "Upload-Metadata": "filename " + b64(b"\xff\xfe")}, ["UTF-8"]),
        ({"Upload-Length": "10", "Upload-Metadata": f"a {b64('x')},a {b64('y')}"}, ["twice"]),
        ({"Upload-Length": "10", "Upload-Metadata": metadata(pipeline="hls,virus")}, ["virus"]),
        ({"Upload-Length": "10", "Upload-Metadata": "x" * 5000}, ["4096"]),
    ],
    ids=[
        "no-length",
        "word",
        "negative",
        "empty",
        "deferred",
        "not-base64",
        "not-utf8",
        "twice",
        "step",
        "long",
    ],
)
def test_bad_creation_headers_are_400_naming_the_header(
    client: TestClient, headers: dict[str, str], words: list[str]
) -> None:
    answer = client.post("/api/v1/uploads", headers={**TUS, **headers})
    assert_problem(answer, 400, *words)
    assert answer.headers["tus-resumable"] == "1.0.0"
    assert client.get("/api/v1/media").json()["items"] == []


@pytest.mark.parametrize(
    ("sent", "shown", "key"),
    [
        ("../../etc/passwd.mp4", "passwd.mp4", "passwd.mp4"),
        ("C:\\Users\\me\\holiday.mov", "holiday.mov", "holiday.mov"),
        ("a\x00b\nc.mp4", "abc.mp4", "abc.mp4"),
        ("..", None, "upload.bin"),
        ("my film (final).mkv", "my film (final).mkv", "my_film__final_.mkv"),
    ],
)
def test_filenames_lose_their_path_parts_and_control_characters(
    client: TestClient, sent: str, shown: str | None, key: str
) -> None:
    answer = client.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            "Upload-Length": "5",
            "Content-Type": OCTETS,
            "Upload-Metadata": metadata(filename=sent),
        },
        content=MEDIA_MAGIC + b"x",
    )
    assert answer.status_code == 201, answer.text
    media_id = answer.headers["mediajobs-media-id"]
    assert client.get(f"/api/v1/media/{media_id}").json()["original"]["filename"] == shown
    assert stored_files(client) == [f"media/{media_id}/original/{key}"]


def test_patch_refusals_name_what_the_protocol_says(client: TestClient) -> None:
    url = create(client).headers["location"]
    assert patch(client, url, 0, DATA[:10]).status_code == 204

    wrong_type = client.patch(
        url, headers={**TUS, "Upload-Offset": "10", "Content-Type": "text/plain"}, content=b"x"
    )
    assert_problem(wrong_type, 415, OCTETS)
    no_type = client.patch(url, headers={**TUS, "Upload-Offset": "10"}, content=b"x")
    assert_problem(no_type, 415, OCTETS)
    assert_problem(patch(client, url, 0, b"again"), 409, "Upload-Offset is 0", "10 bytes")
    assert_problem(patch(client, url, 11, b"gap"), 409)
    no_offset = client.patch(url, headers={**TUS, "Content-Type": OCTETS}, content=b"x")
    assert_problem(no_offset, 400, "Upload-Offset")
    assert_problem(patch(client, url, 10, DATA), 413, "past")
    assert_problem(patch(client, "/api/v1/uploads/00000000-0000-0000-0000-000000000000", 0, b"x"), 404)
    assert_problem(patch(client, "/api/v1/uploads/not-an-id", 0, b"x"), 404)
    assert client.head(url, headers=TUS).headers["upload-offset"] == "10"  # nothing of the refused bodies


def test_a_body_past_the_declared_length_without_a_content_length_stores_nothing(client: TestClient) -> None:
    url = create(client, length=100).headers["location"]

    def chunked() -> Any:
        yield b"a" * 60
        yield b"b" * 60

    answer = client.patch(
        url, headers={**TUS, "Upload-Offset": "0", "Content-Type": OCTETS}, content=chunked()
    )
    assert_problem(answer, 413, "100 bytes")
    assert client.head(url, headers=TUS).headers["upload-offset"] == "0"


def test_checksums_are_verified_and_a_mismatch_stores_nothing(client: TestClient) -> None:
    url = create(client).headers["location"]
    piece = DATA[:5000]
    good = f"sha1 {b64(hashlib.sha1(piece).digest())}"
    bad = f"sha1 {b64(hashlib.sha1(b'other').digest())}"
    assert_problem(patch(client, url, 0, piece, **{"Upload-Checksum": bad}), 460, "Upload-Checksum")
    assert client.head(url, headers=TUS).headers["upload-offset"] == "0"
    assert patch(client, url, 0, piece, **{"Upload-Checksum": good}).headers["upload-offset"] == "5000"
    sha256 = f"sha256 {b64(hashlib.sha256(DATA[5000:6000]).digest())}"
    assert patch(client, url, 5000, DATA[5000:6000], **{"Upload-Checksum": sha256}).status_code == 204
    assert_problem(patch(client, url, 6000, b"x", **{"Upload-Checksum": "crc32 AAAA"}), 400, "sha1")
    assert_problem(patch(client, url, 6000, b"x", **{"Upload-Checksum": "sha1 !!"}), 400, "base64")
    assert client.head(url, headers=TUS).headers["upload-offset"] == "6000"


def test_termination_removes_the_upload_its_asset_and_every_stored_byte(client: TestClient) -> None:
    created = create(client)
    url, media_id = created.headers["location"], created.headers["mediajobs-media-id"]
    assert patch(client, url, 0, DATA[:1000]).status_code == 204
    assert stored_files(client)
    answer = client.delete(url, headers=TUS)
    assert answer.status_code == 204 and answer.headers["tus-resumable"] == "1.0.0"
    assert stored_files(client) == []
    assert client.get(f"/api/v1/media/{media_id}").status_code == 404
    assert_problem(patch(client, url, 1000, b"more"), 410)
    assert client.head(url, headers=TUS).status_code == 410
    assert_problem(client.delete(url, headers=TUS), 410)
    assert_problem(client.delete("/api/v1/uploads/00000000-0000-0000-0000-000000000000", headers=TUS), 404)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"Meeting notes, not a video.\n" * 200, "this is a text file; upload a video or audio file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(5000), "this is a PNG image; upload a video or audio file"),
        (b"tiny", "this is a text file"),  # the whole file, shorter than what is sniffed
    ],
)
@pytest.mark.parametrize("on_creation", [False, True], ids=["patch", "creation-with-upload"])
def test_a_file_that_is_not_media_is_refused_at_its_first_bytes_and_leaves_nothing(
    client: TestClient, body: bytes, says: str, on_creation: bool
) -> None:
    headers = {**TUS, "Upload-Length": str(len(body)), "Upload-Metadata": metadata(filename="notes.mp4")}
    if on_creation:
        answer = client.post("/api/v1/uploads", headers={**headers, "Content-Type": OCTETS}, content=body)
    else:
        created = client.post("/api/v1/uploads", headers=headers)
        url, media_id = created.headers["location"], created.headers["mediajobs-media-id"]
        answer = patch(client, url, 0, body)

    assert_problem(answer, 415, says)
    assert client.get("/api/v1/media").json()["items"] == []  # the upload's asset went with it
    assert stored_files(client) == []
    if not on_creation:
        assert client.head(url, headers=TUS).status_code == 410
        assert client.get(f"/api/v1/media/{media_id}").status_code == 404


def test_a_first_patch_too_short_to_judge_is_taken_and_the_file_left_to_the_probe(client: TestClient) -> None:
    created = create(client)
    url = created.headers["location"]
    assert patch(client, url, 0, DATA[:100]).status_code == 204  # too few bytes to tell: taken
    assert patch(client, url, 100, DATA[100:]).status_code == 204


def test_a_complete_upload_cannot_be_terminated_its_asset_is_deleted_instead(client: TestClient) -> None:
    created = create(client, length=4)
    assert patch(client, created.headers["location"], 0, MEDIA_MAGIC).status_code == 204
    assert_problem(client.delete(created.headers["location"], headers=TUS), 409, "DELETE /api/v1/media/")


def test_an_expired_upload_is_gone(make_client: MakeClient) -> None:
    client = make_client(upload_expiry_s=0.5)
    url = create(client).headers["location"]
    time.sleep(0.7)
    assert client.head(url, headers=TUS).status_code == 410
    assert_problem(patch(client, url, 0, b"late"), 410, "expired")


def test_deleting_an_uploading_asset_stops_its_upload(client: TestClient) -> None:
    created = create(client)
    url = created.headers["location"]
    assert patch(client, url, 0, DATA[:10]).status_code == 204
    assert client.delete(f"/api/v1/media/{created.headers['mediajobs-media-id']}").status_code == 202
    assert_problem(patch(client, url, 10, DATA[10:20]), 410)


def test_uploads_need_the_api_key_and_refuse_cross_site_writes(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEY)
    auth = {"Authorization": f"Bearer {KEY}"}
    assert client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "10"}).status_code == 401
    created = client.post("/api/v1/uploads", headers={**TUS, **auth, "Upload-Length": "10"})
    assert created.status_code == 201
    url = created.headers["location"]
    assert patch(client, url, 0, b"12345").status_code == 401
    assert client.head(url, headers=TUS).status_code == 401
    cross = patch(client, url, 0, b"12345", **auth, Origin="http://evil.example")
    assert_problem(cross, 403, "cross-site")
    fetched = patch(client, url, 0, b"12345", **auth, **{"Sec-Fetch-Site": "cross-site"})
    assert_problem(fetched, 403)
    same = patch(client, url, 0, b"12345", **auth, Origin=ORIGIN)
    assert same.status_code == 204 and same.headers["upload-offset"] == "5"
