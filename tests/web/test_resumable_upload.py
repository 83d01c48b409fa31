"""Resumable uploads in a real browser: the web UI's tus-js-client (vendored from npm, no one here wrote it)
through a proxy that cuts its connections and spreads them over two API processes, on local and S3 storage;
pause and resume; a reload in the middle continues the same upload when the same file is chosen again.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from mediajobs.testing.s3 import create_bucket, with_test_credentials
from mediajobs.testing.servers import RedisServer, free_port, wait_for
from mediajobs.testing.stacks import Stack, stack_env
from tests.media_api.cutter import CuttingProxy
from tests.stacks import KINDS
from tests.web.conftest import DESKTOP, open_page, screenshot

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 s 640x360 clip with film grain: about 5 MB, several cuts' worth."""
    out = tmp_path_factory.mktemp("tus-clip") / "grain.mp4"
    lavfi = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=6"]
    lavfi += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6"]
    encode = ["-vf", "noise=alls=40:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    encode += ["-c:a", "aac", "-t", "6", str(out)]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *lavfi, *encode], check=True)
    return out


@pytest.fixture(scope="module", params=["file", "s3"])
def tus_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[tuple[Stack, list[int]]]:
    """An API + worker and a second API process on the same database, broker and storage."""
    directory = tmp_path_factory.mktemp(f"web-tus-{request.param}")
    if request.param == "file":
        storage = {"storage_url": f"file://{directory / 'storage'}"}
    else:
        endpoint: str = request.getfixturevalue("moto_endpoint")
        storage = {"storage_url": f"s3://{create_bucket(endpoint)}/web", "s3_endpoint_url": endpoint}
    env = stack_env(directory, broker_url=redis_server.new_url(), kind_modules=KINDS, **storage)
    stack = Stack(directory, with_test_credentials(env) if request.param == "s3" else env)
    second: subprocess.Popen[bytes] | None = None
    try:
        stack.start_api()
        stack.start_worker("io,cpu,default", 2)
        port = free_port()
        second = subprocess.Popen(
            [sys.executable, "-m", "mediajobs", "api"],
            env={**stack.env, "MEDIAJOBS_PORT": str(port)},
            stdout=(directory / "api-second.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=directory,
        )
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200)
        yield stack, [stack.port, port]
    finally:
        if second is not None:
            second.terminate()
            second.wait(timeout=10)
        stack.stop()


@pytest.fixture
def proxied(
    browser: Browser, tus_stack: tuple[Stack, list[int]]
) -> Iterator[tuple[Page, CuttingProxy, Stack]]:
    """A tab whose every request goes through a cutting proxy to the two APIs in turn."""
    stack, ports = tus_stack
    proxy = CuttingProxy(ports)
    page, errors = open_page(browser, proxy.url, DESKTOP)
    yield page, proxy, stack
    page.context.close()
    proxy.stop()
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)


def original_of(stack: Stack, media_id: str) -> bytes:
    with stack.client() as api:
        media = wait_for(
            lambda: (m := api.get(f"/api/v1/media/{media_id}").json())["state"] in ("ready", "failed") and m,
            timeout_s=90,
            message="the asset to be processed",
        )
        assert isinstance(media, dict) and media["state"] == "ready", media
        name = media["original"]["filename"]
        answer = api.get(f"/api/v1/media/{media_id}/files/original/{name}", follow_redirects=True)
        return answer.content


def uploaded_link(page: Page) -> str:
    form = page.get_by_role("form", name="Upload a file")
    link = form.get_by_role("status").get_by_role("link", name="grain", exact=True)  # the file's title
    expect(link).to_be_visible(timeout=90_000)
    return (link.get_attribute("href") or "").rsplit("/", 1)[-1]


def test_the_ui_uploads_through_cut_connections_and_two_apis(
    proxied: tuple[Page, CuttingProxy, Stack], clip: Path
) -> None:
    page, proxy, stack = proxied
    size = clip.stat().st_size
    proxy.cuts = [size // 6, size // 4, size // 3]
    page.goto("/#/media")
    form = page.get_by_role("form", name="Upload a file")
    form.get_by_label("Video or audio file").set_input_files(str(clip))
    form.get_by_role("button", name="Upload").click()
    media_id = uploaded_link(page)
    assert proxy.cut_count == 3, f"{proxy.cut_count} cuts"
    assert all(proxy.served[port] >= 2 for port in proxy.upstreams), proxy.served
    stored = original_of(stack, media_id)
    assert hashlib.sha256(stored).digest() == hashlib.sha256(clip.read_bytes()).digest()


def test_pause_resume_and_a_reload_continue_the_same_upload(
    proxied: tuple[Page, CuttingProxy, Stack], clip: Path
) -> None:
    page, proxy, stack = proxied
    size = clip.stat().st_size
    page.goto("/#/media")
    proxy.bytes_per_s = size / 8  # about 8 s for the whole file: time to pause, and to reload
    form = page.get_by_role("form", name="Upload a file")
    form.get_by_label("Video or audio file").set_input_files(str(clip))
    form.get_by_role("button", name="Upload").click()
    bar = form.get_by_role("progressbar", name="Upload progress")
    page.wait_for_function("b => Number(b.getAttribute('aria-valuenow')) > 10", arg=bar.element_handle())
    form.get_by_role("button", name="Pause").click()
    expect(form.get_by_role("button", name="Resume")).to_be_visible()
    with stack.client() as api:
        uploading = api.get("/api/v1/media", params={"state": "uploading"}).json()["items"]
        asset: dict[str, Any] = next(m for m in uploading if m["source"].get("filename") == "grain.mp4")
        paused_at = wait_for(
            lambda: int(api.head(asset["upload"]["url"], headers=TUS).headers["upload-offset"]) or None
        )
    screenshot(page, "upload-paused")
    form.get_by_role("button", name="Resume").click()
    page.wait_for_function(
        "([b, at]) => Number(b.getAttribute('aria-valuenow')) > at",
        arg=[bar.element_handle(), 100 * paused_at / size],
    )
    page.reload()  # the tab goes away mid-upload; the server keeps what reached it
    form = page.get_by_role("form", name="Upload a file")
    expect(form).to_contain_text("Unfinished in this browser: grain.mp4")
    requests_before = len(proxy.offsets)
    with stack.client() as api:
        kept = int(api.head(asset["upload"]["url"], headers=TUS).headers["upload-offset"])
    assert 0 < kept < size
    proxy.bytes_per_s = None
    form.get_by_label("Video or audio file").set_input_files(str(clip))
    form.get_by_role("button", name="Upload").click()
    assert uploaded_link(page) == asset["id"]  # the same asset: the upload continued
    resumed_from = proxy.offsets[requests_before:]
    assert resumed_from and min(resumed_from) >= kept, f"PATCHes after the reload from {resumed_from}"
    assert (
        hashlib.sha256(original_of(stack, asset["id"])).digest() == hashlib.sha256(clip.read_bytes()).digest()
    )
