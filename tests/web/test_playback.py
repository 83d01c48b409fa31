"""With auth on, the web UI plays and shows thumbnails through signed URLs; files never get the API key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Request, expect

from mediajobs.testing.stacks import Stack
from tests.stacks import StackPool
from tests.web.conftest import DESKTOP, open_page
from tests.web.test_media_ui import clip, upload, wait_ready

__all__ = ["clip"]

pytestmark = pytest.mark.slow

KEY = "ui-playback-key"


@pytest.fixture(scope="module")
def keyed_web_stack(stack_pool: StackPool) -> Stack:
    return stack_pool.get("web-keyed", api_keys=KEY).stack


@pytest.fixture(scope="module")
def keyed_asset(keyed_web_stack: Stack, clip: Path) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=keyed_web_stack.api_url, timeout=30, headers=headers) as api:
        return wait_ready(api, upload(api, clip)["id"])


def test_asset_page_plays_with_playback_tokens_and_never_sends_the_key_for_files(
    browser: Browser, keyed_web_stack: Stack, keyed_asset: dict[str, Any]
) -> None:
    page, errors = open_page(browser, keyed_web_stack.api_url, DESKTOP)
    page.add_init_script(f"localStorage.setItem('mediajobs.apiKey', {KEY!r})")
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    try:
        page.goto("/#/media")
        card = page.locator(f'li.media-card[data-media-id="{keyed_asset["id"]}"]')
        thumb = card.get_by_role("img")
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())

        page.goto(f"/#/media/{keyed_asset['id']}")
        video = page.locator("video")
        page.wait_for_function("v => v.readyState >= 2", arg=video.element_handle(), timeout=20_000)
        page.evaluate("v => { v.muted = true; return v.play(); }", video.element_handle())
        page.wait_for_function("v => v.currentTime > 1", arg=video.element_handle(), timeout=15_000)
        expect(page.get_by_role("alert")).to_have_count(0)

        files = [r for r in requests if "/files/" in r.url]
        kinds = {Path(r.url.split("?", 1)[0]).suffix for r in files}
        assert {".jpg", ".m3u8", ".ts"} <= kinds, [r.url for r in files]
        for request in files:
            assert "token=" in request.url, request.url
            assert "authorization" not in request.all_headers(), f"{request.url} was sent with the API key"
        assert not [r.url for r in requests if KEY in r.url]
    finally:
        page.context.close()
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)
