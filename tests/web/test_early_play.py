"""Chromium's native player plays an asset while its ladder is still being encoded, honestly.

A standard upload plays from the start and after a seek to 80 % as soon as its own stream is cut into
segments; an HEVC upload plays from the start once its first chunk is stored, and its player cannot seek past
what is encoded (a growing playlist), then plays anywhere once it is ready.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from mediajobs.testing.stacks import Stack
from tests.web.conftest import DESKTOP, open_page

pytestmark = pytest.mark.slow
# The HEVC upload: two encoded rungs (480p, 360p) on a fixed grid (a 2 s lead, then 4 s segments), still
# encoding for many seconds after it first plays, so its player sees a playlist that grows.
HEVC_SIZE, HEVC_SECONDS = "640x480", 20
SEEKABLE_END = "() => { const s = document.querySelector('video').seekable; return s.length ? s.end(0) : 0; }"


def make(out: Path, seconds: int, size: str, video: list[str]) -> Path:
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
    args += ["-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds), *video, "-g", "50"]
    subprocess.run([*args, "-c:a", "aac", str(out)], check=True)
    return out


def upload_and_wait_playable(api: httpx.Client, path: Path) -> dict[str, Any]:
    with path.open("rb") as body:
        created = api.post("/api/v1/media/uploads", params={"filename": path.name}, content=body).json()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        media = api.get(f"/api/v1/media/{created['media']['id']}").json()
        if media["state"] == "failed":
            raise AssertionError(media)
        if media["hls"]:
            return dict(media)
        time.sleep(0.05)
    raise AssertionError("the asset never became playable")


def native(page: Page, url: str) -> None:
    page.set_content("<video muted playsinline></video>")
    page.evaluate("url => { const v = document.querySelector('video'); v.src = url; return v.play(); }", url)


def played(page: Page, past: float) -> None:
    page.wait_for_function(
        "past => { const v = document.querySelector('video'); return v.error || v.currentTime > past; }",
        arg=past,
        timeout=30_000,
    )
    error = page.evaluate("() => { const e = document.querySelector('video').error; return e && e.message; }")
    assert error is None, error


def test_standard_upload_plays_and_seeks_while_its_lower_rungs_are_encoded(
    browser: Browser, web_stack: Stack, tmp_path: Path
) -> None:
    src = make(tmp_path / "std.mp4", 50, "1280x720", ["-c:v", "libx264", "-preset", "ultrafast"])
    page, errors = open_page(browser, web_stack.api_url, DESKTOP)
    with web_stack.client() as api:
        media = upload_and_wait_playable(api, src)
        try:
            assert media["state"] == "processing"
            native(page, media["hls"]["master_url"])
            played(page, 0.5)
            page.evaluate("() => { const v = document.querySelector('video'); v.currentTime = 40; }")
            played(page, 40.5)
            still = api.get(f"/api/v1/media/{media['id']}").json()
        finally:
            page.context.close()
            # Its lower rungs would go on encoding on the stack the other browser tests share.
            assert api.delete(f"/api/v1/media/{media['id']}").status_code == 202
    assert still["state"] == "processing", "the ladder ended before the seek: nothing was shown early"
    assert not errors, errors


def test_hevc_upload_plays_from_the_start_and_cannot_seek_past_what_is_encoded(
    browser: Browser, web_stack: Stack, tmp_path: Path
) -> None:
    hevc = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1"]
    src = make(tmp_path / "hevc.mp4", HEVC_SECONDS, HEVC_SIZE, hevc)
    page, errors = open_page(browser, web_stack.api_url, DESKTOP)
    with web_stack.client() as api:
        media = upload_and_wait_playable(api, src)
        try:
            assert media["state"] == "processing"
            native(page, media["hls"]["master_url"])
            played(page, 0.5)
            reach = page.evaluate(SEEKABLE_END)
            state = api.get(f"/api/v1/media/{media['id']}").json()["state"]
            if state == "processing":
                assert reach < HEVC_SECONDS - 4, (
                    f"a seek could reach {reach} s while the ladder was still encoding"
                )
            # The web UI's hls.js player: a growing playlist is live to it, yet it starts at the beginning.
            page.goto(f"/#/media/{media['id']}")
            video = page.locator("video")
            page.wait_for_function("v => v.readyState >= 2", arg=video.element_handle(), timeout=30_000)
            page.evaluate("v => { v.muted = true; return v.play(); }", video.element_handle())
            page.wait_for_function("v => v.currentTime > 0.5", arg=video.element_handle(), timeout=30_000)
            assert page.evaluate("v => v.currentTime", video.element_handle()) < HEVC_SECONDS / 3
            ready = api.get(f"/api/v1/media/{media['id']}").json()
            deadline = time.monotonic() + 180
            while ready["state"] == "processing" and time.monotonic() < deadline:
                time.sleep(0.2)
                ready = api.get(f"/api/v1/media/{media['id']}").json()
            assert ready["state"] == "ready", ready
            native(page, ready["hls"]["master_url"])
            seek = HEVC_SECONDS - 6
            page.evaluate("t => { document.querySelector('video').currentTime = t; }", seek)
            played(page, seek + 0.5)
        finally:
            page.context.close()
            if api.get(f"/api/v1/media/{media['id']}").json()["state"] != "ready":
                # A failure above leaves it encoding on the stack the other browser tests share.
                api.delete(f"/api/v1/media/{media['id']}")
    assert not errors, errors
