"""Uploading media: the pipeline's results, limits, unusable files, and transcoding progress over SSE."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mediajobs import process
from mediajobs.testing.files import media_like
from mediajobs.units import format_bytes
from tests.media_api.clips import Clips
from tests.media_api.helpers import (
    JSON,
    all_media_ids,
    check_plays,
    error_code,
    fetch,
    get_media,
    problem,
    upload,
    wait_job,
    wait_media,
)
from tests.media_api.stacks import LIMIT_BYTES, limited_file_stack
from tests.stacks import STORAGES, MediaStack, StackPool

S3_LIMIT_BYTES = 10_000_000
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Limited:
    """A stack with a small MEDIAJOBS_MAX_UPLOAD_BYTES, and a clip over it."""

    stack: MediaStack
    limit_bytes: int
    clip: Path


@pytest.fixture(params=STORAGES)
def limited(request: pytest.FixtureRequest, stack_pool: StackPool, clips: Clips) -> Limited:
    if request.param == "file":
        return Limited(limited_file_stack(stack_pool), LIMIT_BYTES, clips["medium"])
    # On S3 the limit sits past the first 8 MiB part, so a refused upload has a multipart upload to abort.
    stack = stack_pool.get("limited-s3", "s3", max_upload_bytes=str(S3_LIMIT_BYTES))
    return Limited(stack, S3_LIMIT_BYTES, clips.noisy())


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_upload_becomes_ready_with_probe_hls_and_thumbnail(
    media_stack: MediaStack, api: httpx.Client, clips: Clips, multipart: bool
) -> None:
    clip = clips["small"]
    created = upload(api, clip, multipart=multipart, filename="holiday.mp4")
    media_id = created["media"]["id"]
    assert created["media"]["state"] == "processing"
    assert created["media"]["source"]["type"] == "upload"
    assert created["job"]["media_id"] == media_id
    assert created["job"]["id"] in created["media"]["jobs"]

    media = wait_media(api, media_id, "ready", "failed")
    assert media["state"] == "ready", media
    assert media["error"] is None
    for stamp in (media["created_at"], media["updated_at"]):
        assert stamp.endswith(("Z", "+00:00")), stamp
    assert media["original"]["size"] == clip.stat().st_size
    assert media["original"]["filename"] == "holiday.mp4"
    assert media["original"]["content_type"] == "video/mp4"
    probe = media["probe"]
    assert abs(probe["duration"] - 4.0) < 0.1, probe
    assert (probe["width"], probe["height"], probe["fps"]) == (640, 360, 25.0), probe
    assert (probe["video_codec"], probe["audio_codec"]) == ("h264", "aac"), probe
    # Only rungs no taller than the source: a 360p source gets one 360p variant, nothing upscaled.
    assert [v["height"] for v in media["hls"]["variants"]] == [360], media["hls"]
    assert media["hls"]["variants"][0]["bandwidth"] > 0
    assert wait_job(api, created["job"]["id"], "succeeded", "failed")["state"] == "succeeded"

    thumbnail = fetch(api, media["thumbnail_url"])
    assert thumbnail.headers["content-type"].startswith("image/jpeg")
    assert thumbnail.content[:3] == b"\xff\xd8\xff"
    check_plays(api, media)
    assert "RESOLUTION=640x360" in fetch(api, media["hls"]["master_url"]).text

    keys = media_stack.stored.keys(f"media/{media_id}/")
    assert f"media/{media_id}/original/holiday.mp4" in keys, keys
    assert any(k.endswith("/master.m3u8") and k.startswith(f"media/{media_id}/hls/") for k in keys), keys
    assert any(k.endswith("/360p/index.m3u8") for k in keys), keys
    assert any(k.startswith(f"media/{media_id}/thumbnail/") and k.endswith(".jpg") for k in keys), keys
    media_stack.assert_temp_empty()


def test_audio_only_upload_becomes_ready_with_an_audio_stream_and_no_thumbnail(
    file_api: httpx.Client, clips: Clips
) -> None:
    created = upload(file_api, clips.stream_only("audio"), content_type="audio/mp4")
    media = wait_media(file_api, created["media"]["id"], "ready", "failed")
    assert media["state"] == "ready", media
    assert media["probe"]["audio_codec"] == "aac" and media["probe"]["video_codec"] is None, media["probe"]
    assert media["probe"]["width"] is None and media["probe"]["height"] is None
    assert media["thumbnail_url"] is None
    assert len(media["hls"]["variants"]) == 1
    check_plays(file_api, media, video=False)


def test_video_without_audio_becomes_ready(file_api: httpx.Client, clips: Clips) -> None:
    created = upload(file_api, clips.stream_only("video"))
    media = wait_media(file_api, created["media"]["id"], "ready", "failed")
    assert media["state"] == "ready", media
    assert media["probe"]["audio_codec"] is None and media["probe"]["video_codec"] == "h264"
    assert [v["height"] for v in media["hls"]["variants"]] == [360]
    check_plays(file_api, media)
    assert fetch(file_api, media["thumbnail_url"]).content[:3] == b"\xff\xd8\xff"


GENERIC_TYPES = [None, "application/x-www-form-urlencoded", "application/octet-stream"]


@pytest.mark.parametrize("content_type", GENERIC_TYPES)
def test_raw_upload_without_a_media_type_is_typed_from_its_file(
    file_api: httpx.Client, clips: Clips, content_type: str | None
) -> None:
    # `curl --data-binary @clip.mp4` sends application/x-www-form-urlencoded; other clients send nothing.
    headers = {"Content-Type": content_type} if content_type else {}
    response = file_api.post(
        "/api/v1/media/uploads?filename=typed.mp4", content=clips["small"].read_bytes(), headers=headers
    )
    assert response.status_code == 202, response.text
    media = wait_media(file_api, response.json()["media"]["id"], "ready", "failed")
    assert media["original"]["content_type"] == "video/mp4", media["original"]
    served = file_api.get(f"/api/v1/media/{media['id']}/files/original/typed.mp4")
    assert served.headers["content-type"] == "video/mp4"


def test_master_url_and_files_point_at_the_files_route(
    api: httpx.Client, media_stack: MediaStack, clips: Clips
) -> None:
    media = wait_media(api, upload(api, clips["small"])["media"]["id"], "ready", "failed")
    prefix = f"{media_stack.stack.api_url}/api/v1/media/{media['id']}/files/"
    assert media["hls"]["master_url"].startswith(prefix), media["hls"]
    assert all(v["url"].startswith(prefix) for v in media["hls"]["variants"]), media["hls"]
    assert media["thumbnail_url"].startswith(prefix), media["thumbnail_url"]
    # Playlists are always answered by the API itself (never a redirect), so relative URIs resolve there.
    master = api.get(media["hls"]["master_url"])
    assert master.status_code == 200 and master.text.startswith("#EXTM3U")
    variant = api.get(media["hls"]["variants"][0]["url"])
    assert variant.status_code == 200 and "#EXTINF:" in variant.text


def test_large_upload_is_streamed_to_storage_intact(
    media_stack: MediaStack, api: httpx.Client, clips: Clips
) -> None:
    clip = clips.noisy()
    assert clip.stat().st_size > 8 * 1024 * 1024
    response = api.post(
        "/api/v1/media/uploads?filename=grain.mp4",
        content=_chunks(clip),
        headers={"Content-Type": "video/mp4"},
    )
    assert response.status_code == 202, response.text
    media = wait_media(api, response.json()["media"]["id"], "ready", "failed")
    assert media["state"] == "ready", media
    assert media["original"]["size"] == clip.stat().st_size
    stored = fetch(api, f"{media_stack.stack.api_url}/api/v1/media/{media['id']}/files/original/grain.mp4")
    assert hashlib.sha256(stored.content).digest() == hashlib.sha256(clip.read_bytes()).digest()
    assert not [k for k in media_stack.stored.keys("media/") if "unfinished" in k or ".mjtmp-" in k]


@pytest.mark.parametrize(
    "filename",
    ["../../../../tmp/evil.mp4", "nested/dir/clip.mp4", "..", "%2e%2e", "été vidéo.mp4", "a\\b.mp4"],
)
@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_upload_filename_cannot_place_the_original_outside_the_asset(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips, filename: str, multipart: bool
) -> None:
    before = file_stack.stored.keys()
    # Starts as a Matroska file but is not one: taken, then the asset fails fast; only where its original
    # was stored matters here.
    created = upload(
        file_api, clips.file("fake.mkv", media_like(600)), multipart=multipart, filename=filename
    )
    media_id = created["media"]["id"]
    new = sorted(set(file_stack.stored.keys()) - set(before))
    assert len(new) == 1 and new[0].startswith(f"media/{media_id}/original/"), new
    assert "/" not in new[0].removeprefix(f"media/{media_id}/original/"), new
    assert not (file_stack.stored.root.parent / "evil.mp4").exists()  # type: ignore[union-attr]
    wait_media(file_api, media_id, "failed", "ready")


def _chunks(path: Path, size: int = 256 * 1024) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


@pytest.mark.parametrize("how", ["content-length", "chunked", "multipart"])
def test_upload_over_the_limit_is_refused_and_stores_nothing(limited: Limited, how: str) -> None:
    clip, stack = limited.clip, limited.stack
    assert clip.stat().st_size > limited.limit_bytes
    with stack.client() as api:
        before_ids, before_keys = all_media_ids(api), stack.stored.keys()
        if how == "content-length":
            response = api.post("/api/v1/media/uploads?filename=big.mp4", content=clip.read_bytes())
        elif how == "chunked":  # no Content-Length: the limit must hold while streaming
            response = api.post("/api/v1/media/uploads?filename=big.mp4", content=_chunks(clip))
        else:
            with clip.open("rb") as f:
                response = api.post("/api/v1/media/uploads", files={"file": ("big.mp4", f, "video/mp4")})
        body = problem(response, 413)
        # In units a person reads, the same the CLI and the web UI use, and the setting to change.
        assert f"over the limit of {format_bytes(limited.limit_bytes)} (" in body["detail"], body
        assert "MEDIAJOBS_MAX_UPLOAD_BYTES" in body["detail"], body
        if how == "content-length":
            assert f"the upload of {format_bytes(clip.stat().st_size)} is over" in body["detail"], body
        assert all_media_ids(api) == before_ids
        # Nothing at all: no object, no temp file, no unfinished multipart upload holding parts.
        assert stack.stored.keys() == before_keys
        assert api.get("/readyz").status_code == 200


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_empty_upload_is_refused(file_stack: MediaStack, file_api: httpx.Client, multipart: bool) -> None:
    before_ids, before_keys = all_media_ids(file_api), file_stack.stored.keys("media/")
    if multipart:
        response = file_api.post("/api/v1/media/uploads", files={"file": ("empty.mp4", b"", "video/mp4")})
    else:
        response = file_api.post("/api/v1/media/uploads?filename=empty.mp4", content=b"")
    problem(response, 422)
    assert all_media_ids(file_api) == before_ids
    assert file_stack.stored.keys("media/") == before_keys


def test_upload_with_an_unknown_pipeline_step_is_refused_before_anything_is_stored(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    before_ids, before_keys = all_media_ids(file_api), file_stack.stored.keys("media/")

    response = file_api.post(
        "/api/v1/media/uploads?filename=clip.mp4&pipeline=hls,sparkle", content=clips["small"].read_bytes()
    )

    body = problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["pipeline"]
    assert "hls" in body["detail"] and "thumbnail" in body["detail"]  # says what to send instead
    assert all_media_ids(file_api) == before_ids
    assert file_stack.stored.keys("media/") == before_keys


def test_a_truncated_upload_fails_in_plain_words_and_leaves_no_temp_files(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    data = clips["small"].read_bytes()
    created = upload(file_api, clips.file("truncated.mp4", data[: len(data) // 2]))
    media = wait_media(file_api, created["media"]["id"], "ready", "failed")
    assert media["state"] == "failed", media
    assert error_code(media) == "unsupported_media", media
    assert media["hls"] is None and media["thumbnail_url"] is None
    job = wait_job(file_api, created["job"]["id"], "succeeded", "failed", "cancelled")
    assert job["state"] == "failed" and job["error"]["code"] == "unsupported_media", job
    # What ffprobe said stays in the server's log; a person reads what is wrong and what to do.
    assert job["error"]["message"] == media["error"]["message"]
    assert job["error"]["message"].startswith("the file is "), job
    for tools_words in ("ffprobe", "moov", "Invalid data", "NAL", " @ 0x", "file:"):
        assert tools_words not in job["error"]["message"], job
    assert job["attempt"] == 1, "an unusable file is a permanent failure, not retried"
    file_stack.assert_temp_empty()
    # The worker is still healthy: the next job runs.
    follow = file_api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 2, "y": 3}}).json()
    assert wait_job(file_api, follow["id"], "succeeded", "failed", timeout_s=30)["result"] == 5


def _png(tmp_path: Path) -> bytes:
    path = tmp_path / "still.png"
    process.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1", str(path)]
    )
    return path.read_bytes()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("notes.txt", "this is a text file; upload a video or audio file"),
        ("notes.mp4", "this is a text file; upload a video or audio file"),
        ("noise.mp4", "this is not a video or audio file mediajobs recognises; upload a video or audio file"),
        ("holiday.mp4", "this is a PNG image; upload a video or audio file"),
        ("tiny.txt", "this is a text file; upload a video or audio file"),
    ],
)
@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_an_upload_that_is_not_media_is_refused_at_once_with_415_in_plain_words(
    file_stack: MediaStack, file_api: httpx.Client, tmp_path: Path, name: str, says: str, multipart: bool
) -> None:
    data = {
        "notes.txt": b"These are meeting notes, not a video.\n" * 2000,
        "notes.mp4": b"These are meeting notes, not a video.\n" * 200,
        "noise.mp4": bytes(range(256)) * 8000,
        "holiday.mp4": _png(tmp_path),
        "tiny.txt": b"hi\n",
    }[name]
    before_ids, before_keys = all_media_ids(file_api), file_stack.stored.keys("media/")

    if multipart:
        response = file_api.post("/api/v1/media/uploads", files={"file": (name, data, "video/mp4")})
    else:
        response = file_api.post("/api/v1/media/uploads", params={"filename": name}, content=data)

    body = problem(response, 415)
    assert body["detail"].startswith(says), body
    assert "MP4, MOV, MKV, WebM" in body["detail"], body
    assert all_media_ids(file_api) == before_ids
    assert file_stack.stored.keys("media/") == before_keys
    file_stack.assert_temp_empty()


def _events(api: httpx.Client, job_id: str) -> list[tuple[float, JSON]]:
    """Every `job` event of the job's SSE stream, with the (monotonic) time it arrived, until it ends."""
    events: list[tuple[float, JSON]] = []
    timeout = httpx.Timeout(10.0, read=10.0)
    with api.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name, data = "message", list[str]()
        for line in response.iter_lines():
            if line == "":
                if name == "job" and data:
                    ended = bool(events) and events[-1][1]["state"] in TERMINAL
                    assert not ended, "the stream went on after the terminal state"
                    events.append((time.monotonic(), json.loads("\n".join(data))))
                name, data = "message", []
            elif line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").lstrip())
    return events


def test_transcoding_progress_streams_over_sse(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    created = upload(file_api, clips["long"])
    events = _events(file_api, created["job"]["id"])
    jobs = [job for _, job in events]
    assert jobs and jobs[-1]["state"] == "succeeded", jobs[-1:]
    running = [(at, job) for at, job in events if job["state"] == "running"]
    assert len(running) >= 3, f"only {len(running)} running events"

    progress = [job["progress"] for _, job in running]
    assert progress == sorted(progress), f"progress went backwards: {progress}"
    assert all(0 <= p <= 100 for p in progress)
    assert len({p for p in progress if 0 < p < 100}) >= 3, f"too few progress updates: {progress}"
    times = [at for at, _ in running]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps, default=0) <= 3.0, f"no update for {max(gaps):.1f} s while running"
    assert any(job["eta_seconds"] is not None and job["eta_seconds"] >= 0 for _, job in running), (
        "eta_seconds was never set"
    )
    stages = {job["stage"] for _, job in running}
    assert any("transcod" in stage.lower() for stage in stages), stages

    media = wait_media(file_api, created["media"]["id"], "ready", "failed")
    assert media["state"] == "ready"
    assert sorted(v["height"] for v in media["hls"]["variants"]) == [360, 480, 720]
    file_stack.assert_temp_empty()


def test_processing_asset_lists_its_process_job(file_api: httpx.Client, clips: Clips) -> None:
    created = upload(file_api, clips["small"])
    media = get_media(file_api, created["media"]["id"])
    assert media["jobs"] == [created["job"]["id"]]
    jobs = file_api.get("/api/v1/jobs", params={"media_id": media["id"]}).json()["items"]
    assert [j["id"] for j in jobs] == [created["job"]["id"]]
    wait_media(file_api, media["id"], "ready", "failed")


def test_upload_with_the_same_idempotency_key_creates_one_asset(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    headers = {"Idempotency-Key": "upload-once-77ab", "Content-Type": "video/mp4"}
    data = clips["small"].read_bytes()
    before = all_media_ids(file_api)
    first = file_api.post("/api/v1/media/uploads?filename=once.mp4", content=data, headers=headers)
    second = file_api.post("/api/v1/media/uploads?filename=once.mp4", content=data, headers=headers)
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["media"]["id"] == second.json()["media"]["id"]
    assert all_media_ids(file_api) - before == {first.json()["media"]["id"]}
    wait_media(file_api, first.json()["media"]["id"], "ready", "failed")
    stored_assets = {k.split("/")[1] for k in file_stack.stored.keys("media/")}
    assert stored_assets <= before | {first.json()["media"]["id"]}


def test_original_is_served_with_byte_ranges(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    media = wait_media(file_api, upload(file_api, clips["small"])["media"]["id"], "ready", "failed")
    url = f"/api/v1/media/{media['id']}/files/original/{media['original']['filename']}"
    data = clips["small"].read_bytes()
    part = file_api.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206, part.text
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["content-type"] == "video/mp4"
    assert file_api.get(url, headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416
