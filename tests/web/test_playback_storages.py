"""The master URL plays in Chromium's native player and in hls.js, from the start and after a seek, on local
storage and on S3 whose bucket answers CORS as a fresh one does (no rules: nothing cross-origin is readable).
"""

from __future__ import annotations

import html
import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, JSHandle, Page, Request, expect

from mediajobs import doctor
from mediajobs.api.routes import media_files
from mediajobs.config import Settings
from mediajobs.testing.s3 import AWS_ENV, AWS_OVERRIDES, CREDENTIALS, create_bucket, with_test_credentials
from mediajobs.testing.servers import RedisServer, wait_for
from mediajobs.testing.stacks import Stack, stack_env
from tests.stacks import KINDS
from tests.storage.strict_s3 import strict_s3_endpoint
from tests.web.conftest import DESKTOP, open_page, screenshot
from tests.web.test_media_ui import upload, wait_ready

__all__ = ["strict_s3_endpoint"]

pytestmark = pytest.mark.slow

DURATION_S = 20.0
SEEK_S = 0.8 * DURATION_S
NONZERO = re.compile(r"^(?!0$)\d")
CORS_RULE = {"AllowedMethods": ["GET", "HEAD"], "AllowedHeaders": ["range"], "MaxAgeSeconds": 600}


@dataclass
class S3Stack:
    stack: Stack
    bucket: str
    endpoint: str

    def settings(self, **overrides: str) -> Settings:
        env = self.stack.env
        return Settings(storage_url=env["MEDIAJOBS_STORAGE_URL"], s3_endpoint_url=self.endpoint, **overrides)


@pytest.fixture(scope="session")
def clip20(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of 640x360 H.264/AAC with a keyframe every 2 s."""
    path = tmp_path_factory.mktemp("clips") / "clip20.mp4"
    video = ["-f", "lavfi", "-i", "testsrc=size=640x360:rate=25:duration=20"]
    audio = ["-f", "lavfi", "-i", "sine=frequency=440:duration=20"]
    codecs = ["-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", *video, *audio, *codecs, "-shortest", str(path)], check=True
    )
    return path


@pytest.fixture(scope="module")
def s3_stack(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    strict_s3_endpoint: str,
    monkeypatch_module: pytest.MonkeyPatch,
) -> Iterator[S3Stack]:
    """An API and worker on a bucket of the strict S3 server, which has no CORS rules."""
    directory = tmp_path_factory.mktemp("web-s3")
    bucket = create_bucket(strict_s3_endpoint)
    env = stack_env(
        directory,
        broker_url=redis_server.new_url(),
        kind_modules=KINDS,
        storage_url=f"s3://{bucket}/deploy",
        s3_endpoint_url=strict_s3_endpoint,
    )
    for variable in AWS_OVERRIDES:  # for the in-process doctor check
        monkeypatch_module.delenv(variable, raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch_module.setenv(name, value)
    stack = Stack(directory, with_test_credentials(env)).start()
    try:
        yield S3Stack(stack, bucket, strict_s3_endpoint)
    finally:
        stack.stop()


class _EmbedPage(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        src = parse_qs(urlsplit(self.path).query).get("src", [""])[0]
        body = f'<!doctype html><video src="{html.escape(src)}" muted playsinline></video>'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def embed_url() -> Iterator[str]:
    """A page on another origin with nothing but a plain <video src=?src>: a site embedding the master URL.

    Served for real from loopback: Chromium lets only a page in the loopback address space reach the API.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EmbedPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/embed.html"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def assets(web_stack: Stack, s3_stack: S3Stack, clip20: Path) -> dict[str, dict[str, Any]]:
    """One ready 20 s asset per storage, uploaded to both stacks before waiting for either."""
    stacks = {"file": web_stack, "s3": s3_stack.stack}
    ids = {}
    for name, stack in stacks.items():
        with stack.client() as api:
            ids[name] = upload(api, clip20)["id"]
    ready = {}
    for name, stack in stacks.items():
        with stack.client() as api:
            ready[name] = wait_ready(api, ids[name], timeout_s=120)
    return ready


def play_and_seek(page: Page, video: JSHandle) -> None:
    """Play from the start, then seek to 80 %: the clock must move past both points with no error."""
    page.wait_for_function("v => v.readyState >= 2", arg=video, timeout=20_000)
    assert page.evaluate("v => v.currentTime", video) < 1
    page.evaluate("v => { v.muted = true; return v.play(); }", video)
    page.wait_for_function("v => v.currentTime > 1", arg=video, timeout=15_000)
    page.evaluate("([v, t]) => { v.currentTime = t; }", [video, SEEK_S])
    page.wait_for_function("([v, t]) => v.currentTime > t + 1", arg=[video, SEEK_S], timeout=15_000)
    assert page.evaluate("v => v.error && `${v.error.code} ${v.error.message}`", video) is None


def native_video(page: Page, embed_url: str, master_url: str) -> JSHandle:
    page.goto(f"{embed_url}?{urlencode({'src': master_url})}")
    return page.locator("video").element_handle()


def ui_video(page: Page, media_id: str) -> JSHandle:
    """The web UI's player (hls.js) on the asset's page."""
    page.goto(f"/#/media/{media_id}")
    return page.locator("video").element_handle()


@pytest.mark.parametrize("storage", ["file", "s3"])
@pytest.mark.parametrize("player", ["native", "hls.js"])
def test_master_url_plays_from_the_start_and_after_a_seek(
    browser: Browser,
    web_stack: Stack,
    s3_stack: S3Stack,
    assets: dict[str, dict[str, Any]],
    embed_url: str,
    storage: str,
    player: str,
) -> None:
    api_url = web_stack.api_url if storage == "file" else s3_stack.stack.api_url
    media = assets[storage]
    page, errors = open_page(browser, api_url, DESKTOP)
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    try:
        if player == "native":
            video = native_video(page, embed_url, media["hls"]["master_url"])
        else:
            video = ui_video(page, media["id"])
        play_and_seek(page, video)
        if player == "hls.js":
            expect(page.get_by_role("alert")).to_have_count(0)
    finally:
        page.context.close()
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)
    segments = [r.url for r in requests if ".ts" in r.url]
    # Every segment from the API itself: none redirected to the bucket (a redirect is a request of its own).
    assert segments and all(url.startswith(api_url) for url in segments), segments[:5]


def test_redirect_mode_plays_only_once_the_bucket_allows_the_origin_as_doctor_checks(
    browser: Browser, s3_stack: S3Stack, assets: dict[str, dict[str, Any]]
) -> None:
    # A second API on the same database and bucket, redirecting segments to the bucket.
    directory = s3_stack.stack.directory / "redirecting"
    directory.mkdir()
    env = {k: v for k, v in s3_stack.stack.env.items() if k not in ("MEDIAJOBS_PORT", "MEDIAJOBS_API_URL")}
    redirecting = Stack(directory, {**env, "MEDIAJOBS_S3_REDIRECT": "all"})
    settings = s3_stack.settings(s3_redirect="all", api_url=redirecting.api_url)
    check = dict(doctor.CHECKS)["playback"]
    bucket: Any = boto3.client("s3", endpoint_url=s3_stack.endpoint, **CREDENTIALS)
    media_id = assets["s3"]["id"]
    try:
        redirecting.start_api()
        segment = _first_segment_url(redirecting.api_url, media_id)
        answer = httpx.get(segment)
        assert answer.status_code == 307 and answer.headers["location"].startswith(s3_stack.endpoint)

        with pytest.raises(RuntimeError, match="has no CORS rules"):
            check(settings)
        page, errors = open_page(browser, redirecting.api_url, DESKTOP)
        try:
            with page.expect_console_message(lambda m: "blocked by CORS policy" in m.text, timeout=15_000):
                ui_video(page, media_id)
            assert page.evaluate("() => document.querySelector('video').currentTime") == 0
        finally:
            page.context.close()

        other = {**CORS_RULE, "AllowedOrigins": ["http://elsewhere.example"]}
        bucket.put_bucket_cors(Bucket=s3_stack.bucket, CORSConfiguration={"CORSRules": [other]})
        with pytest.raises(RuntimeError, match=f"no rule allows the origin {redirecting.api_url}"):
            check(settings)
        partial = {"AllowedOrigins": [redirecting.api_url], "AllowedMethods": ["GET"]}
        bucket.put_bucket_cors(Bucket=s3_stack.bucket, CORSConfiguration={"CORSRules": [partial]})
        with pytest.raises(RuntimeError, match=r"allows HEAD.*allows GET with the Range header"):
            check(settings)
        rule = {**CORS_RULE, "AllowedOrigins": [redirecting.api_url]}
        bucket.put_bucket_cors(Bucket=s3_stack.bucket, CORSConfiguration={"CORSRules": [rule]})
        assert "GET and HEAD with Range" in check(settings)

        page, later_errors = open_page(browser, redirecting.api_url, DESKTOP)
        requests: list[Request] = []
        page.on("request", lambda request: requests.append(request))
        try:
            play_and_seek(page, ui_video(page, media_id))
            expect(page.get_by_role("alert")).to_have_count(0)
        finally:
            page.context.close()
        assert [r.url for r in requests if r.url.startswith(s3_stack.endpoint)], "no segment came from S3"
        assert not errors + later_errors, "uncaught errors in the page:\n" + "\n".join(errors + later_errors)
    finally:
        bucket.delete_bucket_cors(Bucket=s3_stack.bucket)
        redirecting.stop()
    assert "the API streams HLS" in check(s3_stack.settings(api_url=redirecting.api_url))


def _first_segment_url(api_url: str, media_id: str) -> str:
    with httpx.Client(base_url=api_url, timeout=10) as api:
        master_url = api.get(f"/api/v1/media/{media_id}").json()["hls"]["master_url"]
        master = api.get(master_url).text
        variant_url = httpx.URL(master_url).join(next(u for u in master.splitlines() if u and u[0] != "#"))
        variant = api.get(variant_url).text
        return str(variant_url.join(next(u for u in variant.splitlines() if u.endswith(".ts"))))


def test_asset_playable_while_processing_says_so_with_progress_until_ready(
    browser: Browser, s3_stack: S3Stack, assets: dict[str, dict[str, Any]]
) -> None:
    media_id = assets["s3"]["id"]
    engine = sa.create_engine(s3_stack.stack.env["MEDIAJOBS_DATABASE_URL"])
    with s3_stack.stack.client() as api:
        # A job with real progress stands in for the rest of the ladder still being encoded.
        job = api.post("/api/v1/jobs", json={"kind": "test.long_task", "params": {}}).json()
        # Its progress is what the page shows: wait until it has some (a busy worker starts it late).
        wait_for(
            lambda: api.get(f"/api/v1/jobs/{job['id']}").json()["progress"] > 0,
            timeout_s=60,
            message="the stand-in job to make progress",
        )
    with engine.begin() as db:
        db.execute(sa.text("UPDATE jobs SET media_id = :m WHERE id = :j"), {"m": media_id, "j": job["id"]})
        db.execute(
            sa.text(
                "UPDATE media SET state = 'processing', playable_at = COALESCE(playable_at, updated_at)"
                " WHERE id = :m"
            ),
            {"m": media_id},
        )
    page, errors = open_page(browser, s3_stack.stack.api_url, DESKTOP)
    try:
        page.goto("/#/media")
        card = page.locator(f'li.media-card[data-media-id="{media_id}"]')
        expect(card.get_by_text("Playable, still processing")).to_be_visible()

        video = ui_video(page, media_id)
        note = page.locator(".playable-note")
        expect(note).to_be_visible()
        expect(note).to_contain_text("Playable, still processing")
        expect(note.get_by_role("progressbar")).to_have_attribute("aria-valuenow", NONZERO)
        expect(note).to_contain_text("%")
        page.wait_for_function("v => v.readyState >= 2", arg=video, timeout=20_000)
        page.evaluate("v => { v.muted = true; return v.play(); }", video)
        page.wait_for_function("v => v.currentTime > 1", arg=video, timeout=15_000)
        screenshot(page, "asset-playable-still-processing")

        with engine.begin() as db:
            db.execute(sa.text("UPDATE media SET state = 'ready' WHERE id = :m"), {"m": media_id})
        expect(note).to_be_hidden()
    finally:
        page.context.close()
        engine.dispose()
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("mode", "redirected"),
    [
        ("except-hls", {"thumbnail.jpg", "original/clip.mp4"}),
        (
            "all",
            {"thumbnail.jpg", "original/clip.mp4", "hls/v1/360p/seg_00000.ts", "hls/v1/audio/seg_00000.ts"},
        ),
        ("none", set()),
    ],
)
def test_s3_redirect_setting_chooses_which_files_leave_for_the_bucket(
    mode: str, redirected: set[str]
) -> None:
    paths = ["thumbnail.jpg", "original/clip.mp4", "hls/v1/360p/seg_00000.ts", "hls/v1/audio/seg_00000.ts"]
    settings = Settings(s3_redirect=mode)  # type: ignore[arg-type]
    assert {p for p in paths if media_files.redirects(settings, p)} == redirected
