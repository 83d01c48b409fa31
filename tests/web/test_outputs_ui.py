"""The asset page's outputs in a real browser: storyboard previews on hovering the timeline (the tile shown is
the frame at that time), downloads with their sizes, and "use this frame as poster"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from mediajobs.testing.stacks import Stack
from mediajobs.units import format_bytes
from tests.media_api.outputs import outputs_ready
from tests.toolkit.indexclips import counter_clip, frame_shown_at, gray, index_of
from tests.web.conftest import screenshot
from tests.web.test_media_ui import open_asset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def counted(web_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ready 12 s asset whose frames show their index, with its downloads and storyboard made."""
    path = counter_clip(tmp_path_factory.mktemp("ui-outputs") / "holiday.mp4", seconds=12.0)
    with web_stack.client() as api:
        answer = api.post(
            "/api/v1/media/uploads",
            params={"filename": path.name},
            content=path.read_bytes(),
            headers={"Content-Type": "video/mp4"},
        )
        assert answer.status_code == 202, answer.text
        return outputs_ready(api, answer.json()["media"]["id"], timeout_s=120)


def test_hovering_the_timeline_previews_the_frame_at_that_time(page: Page, counted: dict[str, Any]) -> None:
    open_asset(page, counted["id"])
    track = page.get_by_role("slider", name="Playback position")
    box = track.bounding_box()
    assert box is not None
    preview = page.locator(".storyboard-preview")
    picture = page.locator(".storyboard-picture")
    duration = counted["probe"]["duration"]
    for t in (0.5, 5.5, 11.2):
        page.mouse.move(box["x"] + box["width"] * t / duration, box["y"] + box["height"] / 2)
        expect(preview).to_be_visible()
        # The sprite sheet is a CSS background: wait until the browser has it, then read the tile's pixels.
        page.wait_for_function(
            """el => { const img = new Image(); img.src = getComputedStyle(el).backgroundImage.slice(5, -2);
                       return img.complete && img.naturalWidth > 0; }""",
            arg=picture.element_handle(),
        )
        shown = index_of(gray(picture.screenshot(), ".png"))
        assert shown == frame_shown_at(int(t)), f"hovering at {t} s shows frame {shown}"
    screenshot(page, "storyboard-preview")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 200)
    expect(preview).to_be_hidden()


def test_downloads_card_lists_each_file_with_its_size(page: Page, counted: dict[str, Any]) -> None:
    open_asset(page, counted["id"])
    card = page.get_by_role("list", name="Downloads")
    sizes = {d["type"]: d["size"] for d in counted["downloads"]}
    rows = {
        "original": "Original (holiday.mp4)",
        "mp4": "MP4 240p",
        "audio": "Audio (M4A)",
    }
    for kind, name in rows.items():
        row = card.locator(f'li[data-type="{kind}"]')
        expect(row.locator(".download-name")).to_have_text(name)
        expect(row.locator(".download-size")).to_have_text(format_bytes(sizes[kind]))
        link = row.get_by_role("link", name="Download")
        href = link.get_attribute("href")
        assert href and "download=1" in href
        answer = page.request.get(href)
        assert answer.status == 200 and answer.headers["content-disposition"].startswith("attachment;")
    assert (
        'filename="holiday-240p.mp4"'
        in page.request.get(
            card.locator('li[data-type="mp4"]').get_by_role("link", name="Download").get_attribute("href")
            or ""
        ).headers["content-disposition"]
    )


def test_use_this_frame_as_poster_sets_the_thumbnail(page: Page, web_stack: Stack, tmp_path: Path) -> None:
    path = counter_clip(tmp_path / "poster.mp4", seconds=6.0)
    with web_stack.client() as api:
        answer = api.post(
            "/api/v1/media/uploads",
            params={"filename": path.name},
            content=path.read_bytes(),
            headers={"Content-Type": "video/mp4"},
        )
        media = outputs_ready(api, answer.json()["media"]["id"], storyboard=False, timeout_s=120)
        before = media["thumbnail_url"]
        video = open_asset(page, media["id"])
        page.evaluate(
            "v => new Promise(done => { v.pause(); v.addEventListener('seeked', done, {once: true});"
            " v.currentTime = 3.0; })",
            video.element_handle(),
        )
        page.get_by_role("button", name="Use this frame as poster").click()
        expect(page.locator(".poster-status")).to_contain_text("Poster set to the frame at 0:03.0")
        after = api.get(f"/api/v1/media/{media['id']}").json()["thumbnail_url"]
        assert after != before
        poster = httpx.get(after, follow_redirects=True)
        assert index_of(gray(poster.content, ".jpg")) == frame_shown_at(3.0)
