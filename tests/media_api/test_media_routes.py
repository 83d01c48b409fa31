"""Looking at, listing and deleting assets, and the files route's confinement to one asset's prefix."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mediajobs.testing.files import media_like
from mediajobs.testing.servers import wait_for
from tests.media_api.clips import Clips
from tests.media_api.helpers import (
    get_media,
    problem,
    raw_get,
    ready_asset,
    upload,
    wait_gone,
    wait_job,
    wait_media,
)
from tests.stacks import MediaStack


def test_delete_removes_the_record_and_every_stored_object(
    media_stack: MediaStack, api: httpx.Client, clips: Clips
) -> None:
    media = wait_media(api, upload(api, clips["small"])["media"]["id"], "ready", "failed")
    assert media["state"] == "ready"
    prefix = f"media/{media['id']}/"
    assert media_stack.stored.keys(prefix)
    others = [k for k in media_stack.stored.keys("media/") if not k.startswith(prefix)]

    response = api.delete(f"/api/v1/media/{media['id']}")
    assert response.status_code == 202, response.text
    wait_gone(api, media["id"])
    problem(api.get(f"/api/v1/media/{media['id']}"), 404)
    assert media_stack.stored.keys(prefix) == []
    # Nothing of any other asset went with it.
    assert [k for k in media_stack.stored.keys("media/") if not k.startswith(prefix)] == others
    problem(api.get(media["hls"]["master_url"]), 404)
    listed = api.get("/api/v1/media", params={"limit": 500}).json()["items"]
    assert media["id"] not in {m["id"] for m in listed}


def test_delete_twice_and_delete_of_an_unknown_asset(file_api: httpx.Client, clips: Clips) -> None:
    media = wait_media(file_api, upload(file_api, clips["small"])["media"]["id"], "ready", "failed")
    assert file_api.delete(f"/api/v1/media/{media['id']}").status_code == 202
    second = file_api.delete(f"/api/v1/media/{media['id']}")
    assert second.status_code in (202, 404), second.text
    wait_gone(file_api, media["id"])
    problem(file_api.delete(f"/api/v1/media/{media['id']}"), 404)
    problem(file_api.delete(f"/api/v1/media/{uuid.uuid4()}"), 404)
    problem(file_api.get("/api/v1/media/not-a-uuid"), 404)


def test_delete_while_processing_cancels_the_job(
    media_stack: MediaStack, api: httpx.Client, clips: Clips
) -> None:
    created = upload(api, clips["long"])
    job_id = created["job"]["id"]
    wait_for(
        lambda: api.get(f"/api/v1/jobs/{job_id}").json()["progress"] >= 3,
        timeout_s=30,
        interval_s=0.05,
        message="the transcode to start",
    )
    assert api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "running"

    assert api.delete(f"/api/v1/media/{created['media']['id']}").status_code == 202
    job = wait_job(api, job_id, "cancelled", "succeeded", "failed", timeout_s=30)
    assert job["state"] == "cancelled", job
    assert job["error"]["code"] == "cancelled", job
    wait_gone(api, created["media"]["id"])
    prefix = f"media/{created['media']['id']}/"
    # A late upload by the cancelled job would land after the sweep; give it the time to show up.
    wait_for(lambda: media_stack.stored.keys(prefix) == [], timeout_s=10, message=f"{prefix} to be empty")
    media_stack.assert_temp_empty()
    assert media_stack.stored.keys(prefix) == []


def test_files_route_serves_an_assets_files(api: httpx.Client, media_stack: MediaStack, clips: Clips) -> None:
    media = ready_asset(media_stack, clips)
    original = api.get(
        f"/api/v1/media/{media['id']}/files/original/{media['original']['filename']}", follow_redirects=True
    )
    assert original.status_code == 200
    assert original.content == clips["small"].read_bytes()
    problem(api.get(f"/api/v1/media/{media['id']}/files/original/nope.mp4"), 404)
    problem(api.get(f"/api/v1/media/{uuid.uuid4()}/files/original/{media['original']['filename']}"), 404)


TRAVERSALS = [
    "../x",
    "../../../../etc/passwd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "original/../../{other}/original/{filename}",
    "../{other}/original/{filename}",
    "..%2F{other}%2Foriginal%2F{filename}",
    "%2e%2e/{other}/original/{filename}",
    "..\\{other}\\original\\{filename}",
    "./original/{filename}/../../../{other}/original/{filename}",
    "original/%00{filename}",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_files_route_refuses_paths_outside_the_assets_prefix(
    media_stack: MediaStack, clips: Clips, path: str
) -> None:
    mine = ready_asset(media_stack, clips)
    other = ready_asset(media_stack, clips, "medium")
    filename = other["original"]["filename"]
    raw = path.format(other=other["id"], filename=filename)
    status, body = raw_get(media_stack.stack.api_url, f"/api/v1/media/{mine['id']}/files/{raw}")
    # Not the other asset's file, not a redirect to a signed URL for it, not a 5xx: a plain 404.
    assert status == 404, (status, body[:200])
    assert b"root:" not in body


def test_list_filters_by_state_and_pages_with_a_cursor(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    uploads = [upload(file_api, clips["small"]) for _ in range(3)]
    broken = upload(file_api, clips.file("broken.mkv", media_like(2400)))  # taken, then fails
    ready_ids = {wait_media(file_api, u["media"]["id"], "ready", "failed")["id"] for u in uploads}
    wait_media(file_api, broken["media"]["id"], "failed", "ready")

    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        params: dict[str, str | int] = {"state": "ready", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = file_api.get("/api/v1/media", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= 2
        assert all(m["state"] == "ready" for m in page["items"]), page
        seen += [m["id"] for m in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 200
    assert len(seen) == len(set(seen)), "a page repeated an asset"
    assert ready_ids <= set(seen)
    assert broken["media"]["id"] not in seen
    everything = file_api.get("/api/v1/media", params={"state": "ready", "limit": 500}).json()
    assert [m["id"] for m in everything["items"]] == seen, "pages must follow the unpaged order"
    created = [get_media(file_api, i)["created_at"] for i in seen]
    assert created == sorted(created, reverse=True), "newest first"

    failed = file_api.get("/api/v1/media", params={"state": "failed", "limit": 500}).json()["items"]
    assert broken["media"]["id"] in {m["id"] for m in failed}
    problem(file_api.get("/api/v1/media", params={"state": "bogus"}), 422)
    problem(file_api.get("/api/v1/media", params={"limit": 0}), 422)
    problem(file_api.get("/api/v1/media", params={"limit": 501}), 422)
    bad_cursor = file_api.get("/api/v1/media", params={"cursor": "garbage!"})
    assert bad_cursor.status_code in (400, 422), bad_cursor.text
