"""Importing media from URLs served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx
import pytest

from mediajobs.testing.files import Served
from mediajobs.testing.servers import wait_for
from tests.media_api.helpers import (
    JSON,
    all_media_ids,
    check_plays,
    error_code,
    fetch,
    get_media,
    import_url,
    problem,
    wait_gone,
    wait_job,
    wait_media,
)
from tests.media_api.stacks import LIMIT_BYTES, limited_file_stack
from tests.stacks import MediaStack, StackPool


def _url(source: Served, case: str) -> str:
    if case == "redirect":
        return source.url(f"redirect?to={quote(source.url('small.mp4'), safe='')}")
    paths = {"direct-mp4": "small.mp4", "hls": "hls/index.m3u8", "chunked": "chunked/small.mp4"}
    return source.url(paths[case])


@pytest.mark.parametrize("case", ["direct-mp4", "hls", "redirect", "chunked"])
def test_import_becomes_ready(
    file_stack: MediaStack, file_api: httpx.Client, source: Served, case: str
) -> None:
    url = _url(source, case)
    created = import_url(file_api, url)
    media_id = created["media"]["id"]
    assert created["media"]["state"] in ("pending", "importing")
    assert created["media"]["source"]["type"] == "url" and created["media"]["source"]["url"] == url
    assert created["job"]["media_id"] == media_id

    media = wait_media(file_api, media_id, "ready", "failed")
    assert media["state"] == "ready", media
    assert abs(media["probe"]["duration"] - 4.0) < 0.15, media["probe"]
    assert (media["probe"]["width"], media["probe"]["height"]) == (640, 360)
    if case != "hls":
        assert media["original"]["size"] == (source.root / "small.mp4").stat().st_size
    assert created["job"]["id"] in media["jobs"] and len(media["jobs"]) >= 2, media["jobs"]
    imported = wait_job(file_api, created["job"]["id"], "succeeded", "failed")
    assert imported["state"] == "succeeded", imported
    for job_id in media["jobs"]:
        assert wait_job(file_api, job_id, "succeeded", "failed")["state"] == "succeeded"
    check_plays(file_api, media)
    keys = file_stack.stored.keys(f"media/{media_id}/")
    assert any(k.startswith(f"media/{media_id}/original/") for k in keys), keys
    file_stack.assert_temp_empty()


def test_import_runs_only_the_requested_pipeline(file_api: httpx.Client, source: Served) -> None:
    created = import_url(file_api, source.url("small.mp4"), pipeline=["thumbnail"])
    media = wait_media(file_api, created["media"]["id"], "ready", "failed")
    assert media["state"] == "ready", media
    assert media["hls"] is None
    assert fetch(file_api, media["thumbnail_url"]).content[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("status/404", "source_unreachable"),
        ("missing.mp4", "source_unreachable"),
        ("page.html", "unsupported_media"),
    ],
)
def test_import_of_a_bad_source_fails_with_a_specific_code(
    file_stack: MediaStack, file_api: httpx.Client, source: Served, path: str, code: str
) -> None:
    created = import_url(file_api, source.url(path))
    media = wait_media(file_api, created["media"]["id"], "ready", "failed")
    assert media["state"] == "failed", media
    job = wait_job(file_api, created["job"]["id"], "succeeded", "failed", "cancelled")
    assert job["state"] == "failed" and job["error"]["code"] == code, job
    assert job["error"]["message"]
    assert error_code(media) == code, media
    assert file_stack.stored.keys(f"media/{media['id']}/") == []
    file_stack.assert_temp_empty()


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("notes.mp4", b"Meeting notes, not a video.\n" * 200, "the URL gave a text file, not a video"),
        ("still.mp4", b"\x89PNG\r\n\x1a\n" + bytes(2000), "the URL gave a PNG image, not a video"),
    ],
)
def test_import_of_a_file_that_is_not_media_fails_at_once_in_plain_words(
    file_stack: MediaStack, file_api: httpx.Client, source: Served, name: str, data: bytes, says: str
) -> None:
    (source.root / name).write_bytes(data)

    created = import_url(file_api, source.url(name))

    job = wait_job(file_api, created["job"]["id"], "succeeded", "failed", "cancelled")
    assert job["state"] == "failed" and job["error"]["code"] == "unsupported_media", job
    assert job["error"]["message"].startswith(says), job
    assert "ffprobe" not in job["error"]["message"] and "moov" not in job["error"]["message"], job
    assert job["attempt"] == 1, job
    media = wait_media(file_api, created["media"]["id"], "ready", "failed")
    assert media["state"] == "failed" and media["error"] == job["error"], media
    assert [j for j in media["jobs"] if j != job["id"]] == [], "nothing after the import ran"
    assert file_stack.stored.keys(f"media/{media['id']}/") == []
    file_stack.assert_temp_empty()


def test_import_over_the_size_limit_fails_with_too_large(stack_pool: StackPool, source: Served) -> None:
    limited = limited_file_stack(stack_pool)
    assert (source.root / "medium.mp4").stat().st_size > LIMIT_BYTES
    with limited.client() as api:
        for path in ("medium.mp4", "chunked/medium.mp4"):  # with and without a Content-Length
            created = import_url(api, source.url(path))
            media = wait_media(api, created["media"]["id"], "ready", "failed")
            assert media["state"] == "failed", media
            job = wait_job(api, created["job"]["id"], "succeeded", "failed", "cancelled")
            assert job["error"]["code"] == "too_large", job
            assert error_code(media) == "too_large", media
            assert limited.stored.keys(f"media/{media['id']}/") == []
        limited.assert_temp_empty()


@pytest.mark.parametrize(
    "url", ["ftp://x", "http://", "not a url", "file:///etc/passwd", "", "http://:80/a.mp4"]
)
def test_import_of_an_invalid_url_is_refused(file_api: httpx.Client, url: str) -> None:
    before = all_media_ids(file_api)
    body = problem(file_api.post("/api/v1/media/imports", json={"url": url}), 422)
    assert any("url" in str(e.get("field", "")) for e in body.get("errors") or []), body
    assert all_media_ids(file_api) == before


PRIVATE_HOSTS = ["127.0.0.1", "localhost", "[::1]", "10.1.2.3", "169.254.169.254", "0.0.0.0"]


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_import_from_a_private_address_is_refused_unless_allowed(
    stack_pool: StackPool, source: Served, host: str
) -> None:
    strict = stack_pool.get("strict", "file", workers=0)
    with strict.client() as api:
        before = all_media_ids(api)
        body = problem(
            api.post("/api/v1/media/imports", json={"url": f"http://{host}:{source.port}/small.mp4"}), 422
        )
        assert any("url" in str(e.get("field", "")) for e in body.get("errors") or []), body
        assert all_media_ids(api) == before


def test_import_with_the_same_idempotency_key_creates_one_asset(
    file_api: httpx.Client, source: Served
) -> None:
    headers = {"Idempotency-Key": "import-once-1f3c"}
    body = {"url": source.url("small.mp4")}
    first = file_api.post("/api/v1/media/imports", json=body, headers=headers)
    second = file_api.post("/api/v1/media/imports", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["media"]["id"] == second.json()["media"]["id"]
    assert first.json()["job"]["id"] == second.json()["job"]["id"]
    wait_media(file_api, first.json()["media"]["id"], "ready", "failed")


@pytest.fixture
def killed_import(stack_pool: StackPool, source: Served) -> tuple[MediaStack, JSON, JSON]:
    """An import whose worker was SIGKILLed mid-download and a new worker started: (stack, media, job), ended.

    Run once; the tests below look at different consequences of the same crash.
    """
    crash = stack_pool.get("crash", "file", import_allow_private="true")
    if "killed" not in crash.cache:
        with crash.client() as api:
            # /slow/ serves 32 KiB every 50 ms, chunked: the ~2.3 MB clip keeps the download busy for seconds.
            created = import_url(api, source.url("slow/medium.mp4"))
            media_id, job_id = created["media"]["id"], created["job"]["id"]

            def downloading() -> bool:
                job = api.get(f"/api/v1/jobs/{job_id}").json()
                return bool(job["stage"].startswith("Downloading") and job["progress"] < 90)

            wait_for(downloading, timeout_s=20, message="the download to be under way")
            assert get_media(api, media_id)["state"] == "importing"
            crash.stack.kill_worker(crash.stack.workers[0])
            crash.stack.start_worker("io,cpu,default", 2)
            media = wait_media(api, media_id, "ready", "failed", timeout_s=90)
            job = wait_job(api, job_id, "succeeded", "failed", "cancelled", timeout_s=30)
            crash.cache["killed"] = (media, job)
    media, job = crash.cache["killed"]
    return crash, media, job


def test_import_interrupted_by_a_killed_worker_does_not_stay_importing(
    killed_import: tuple[MediaStack, JSON, JSON],
) -> None:
    _, media, job = killed_import
    if media["state"] == "failed":
        assert error_code(media) == "worker_lost" and job["error"]["code"] == "worker_lost", (media, job)
    else:
        assert job["state"] == "succeeded" and job["attempt"] == 2, job
        assert media["probe"]["duration"] == pytest.approx(10.0, abs=0.15)


def test_temp_files_of_a_killed_worker_are_reclaimed_once_its_job_ends(
    killed_import: tuple[MediaStack, JSON, JSON],
) -> None:
    crash, _, job = killed_import
    assert job["state"] in ("succeeded", "failed")
    # The killed worker could not clean up; whoever re-runs or reaps the job must, or every crash leaks
    # a partial download (of up to MEDIAJOBS_MAX_UPLOAD_BYTES) for good.
    crash.assert_temp_empty(timeout_s=15)


def test_delete_during_an_import_cancels_it_and_stores_nothing(
    file_stack: MediaStack, file_api: httpx.Client, source: Served
) -> None:
    created = import_url(file_api, source.url("slow/medium.mp4"))
    media_id, job_id = created["media"]["id"], created["job"]["id"]

    def downloading() -> bool:
        # The slow route is chunked (no Content-Length), so the stage, not the percentage, shows the download.
        job = file_api.get(f"/api/v1/jobs/{job_id}").json()
        return bool(job["stage"].startswith("Downloading") and job["progress"] < 90)

    wait_for(downloading, timeout_s=15, message="the download to be under way")
    assert file_api.delete(f"/api/v1/media/{media_id}").status_code == 202
    job = wait_job(file_api, job_id, "cancelled", "succeeded", "failed", timeout_s=15)
    assert job["state"] == "cancelled", job
    wait_gone(file_api, media_id)
    # The download was cut short, so no late original may appear under the removed prefix.
    time.sleep(1.0)
    assert file_stack.stored.keys(f"media/{media_id}/") == []
    file_stack.assert_temp_empty()
