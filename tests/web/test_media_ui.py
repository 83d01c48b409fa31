"""The media pages in a real browser: upload and play, mask, cut, analyse, delete — against the real API."""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from mediajobs.testing.servers import wait_for
from mediajobs.testing.stacks import Stack
from tests.media_api.helpers import outputs_made
from tests.web.conftest import drag, field_error, screenshot, unlabeled_controls

pytestmark = pytest.mark.slow

SIZE = "640x360"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", *args], check=True)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of testsrc with a 440 Hz tone, 640x360."""
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size={SIZE}:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=4",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        str(path),
    )
    return path


@pytest.fixture(scope="session")
def eventful_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s with something to find: a cut to black at 2 s, a cut back at 3 s, silence from 1 s to 2 s."""
    path = tmp_path_factory.mktemp("clips") / "eventful.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size={SIZE}:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        f"color=black:size={SIZE}:rate=25:duration=1",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={SIZE}:rate=25:duration=1",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100:duration=1",
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=44100:cl=mono:d=1",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=660:sample_rate=44100:duration=2",
        "-filter_complex",
        "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v];[3:a][4:a][5:a]concat=n=3:v=0:a=1[a]",
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        str(path),
    )
    return path


def upload(api: httpx.Client, path: Path) -> dict[str, Any]:
    response = api.post(
        "/api/v1/media/uploads",
        params={"filename": path.name},
        content=path.read_bytes(),
        headers={"Content-Type": "video/mp4"},
    )
    assert response.status_code == 202, response.text
    return response.json()["media"]  # type: ignore[no-any-return]


def wait_ready(api: httpx.Client, media_id: str, timeout_s: float = 60) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        media = api.get(f"/api/v1/media/{media_id}").json()
        assert media["state"] != "failed", media
        # Settled: its downloads and storyboard are made too, so the page does not redraw under a test.
        return media if media["state"] == "ready" and outputs_made(media) else None

    return wait_for(
        ready,
        timeout_s=timeout_s,
        message=f"media {media_id} to be ready",
    )


@pytest.fixture(scope="module")
def asset(web_stack: Stack, eventful_clip: Path) -> dict[str, Any]:
    """A ready asset the operation tests read (and never change: operations make new assets)."""
    with web_stack.client() as api:
        return wait_ready(api, upload(api, eventful_clip)["id"])


def open_asset(page: Page, media_id: str) -> Locator:
    """Open the asset page and wait until its player has the first frame; returns the <video>."""
    page.goto(f"/#/media/{media_id}")
    video = page.locator("video")
    page.wait_for_function("v => v.readyState >= 2", arg=video.element_handle(), timeout=20_000)
    return video


def derived_card(page: Page, media_id: str) -> Locator:
    cards = page.get_by_role("list", name="Derived assets")
    return cards.locator(f'li.media-card[data-media-id="{media_id}"]')


def new_asset_of(page: Page, panel: Locator, api: httpx.Client) -> str:
    """The id of the asset the job shown in `panel` is making."""
    job_id = panel.locator("li.job").get_attribute("data-job-id")
    return str(api.get(f"/api/v1/jobs/{job_id}").json()["media_id"])


def test_uploaded_clip_shows_upload_progress_then_plays_in_the_player(page: Page, clip: Path) -> None:
    page.goto("/#/media")
    form = page.get_by_role("form", name="Upload a file")
    form.get_by_label("Video or audio file").set_input_files(str(clip))
    form.get_by_role("button", name="Upload").click()
    expect(form.get_by_role("progressbar", name="Upload progress")).to_have_attribute("aria-valuenow", "100")
    link = form.get_by_role("status").get_by_role("link", name="clip", exact=True)  # the file's title
    expect(link).to_be_visible()
    media_id = (link.get_attribute("href") or "").rsplit("/", 1)[-1]

    card = page.locator(f'li.media-card[data-media-id="{media_id}"]')
    expect(card).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(card).to_contain_text("4.0 s")
    expect(card).to_contain_text("640×360")  # noqa: RUF001 - the page's own multiplication sign
    thumb = card.get_by_role("img", name="Thumbnail of clip")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    screenshot(page, "media-desktop")

    card.get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"#/media/{media_id}$"))
    video = open_asset(page, media_id)
    quality = page.get_by_label("Quality")
    expect(quality.locator("option")).to_have_text(["Auto", re.compile(r"^360p")])
    expect(quality).to_have_value("-1")
    page.evaluate("v => { v.muted = true; return v.play(); }", video.element_handle())
    page.wait_for_function("v => v.currentTime > 1", arg=video.element_handle(), timeout=15_000)
    expect(page.get_by_role("slider", name="Playback position")).not_to_have_attribute("aria-valuenow", "0")
    screenshot(page, "asset-desktop")


def test_drawing_a_mask_on_the_paused_frame_creates_a_derived_asset(
    page: Page,
    api: httpx.Client,
    asset: dict[str, Any],
) -> None:
    open_asset(page, asset["id"])
    mask = page.get_by_role("form", name="Mask regions")
    mask.get_by_role("button", name="Draw on the video").click()
    drag(page, page.locator("canvas.overlay"), (0.25, 0.25), (0.5, 0.5))

    region = mask.get_by_role("group", name="Region 1")
    shown = {
        key: int(region.get_by_label(label).input_value())
        for key, label in (("x", "X (px)"), ("y", "Y (px)"), ("w", "Width (px)"), ("h", "Height (px)"))
    }
    # A quarter of the way in, a quarter of the frame across: source pixels, whatever the display size.
    expected = {"x": 160, "y": 90, "w": 160, "h": 90}
    assert all(abs(shown[k] - expected[k]) <= 3 for k in expected), shown
    region.get_by_label("Style").select_option("black")
    region.get_by_label("End (s)").fill("3")
    screenshot(page, "asset-mask-desktop")
    mask.get_by_role("button", name="Create masked copy").click()

    expect(mask.locator("li.job")).to_be_visible()
    derived_id = new_asset_of(page, mask, api)
    expect(derived_card(page, derived_id)).to_have_attribute("data-state", "ready", timeout=60_000)
    derived = api.get(f"/api/v1/media/{derived_id}").json()
    assert derived["parent_id"] == asset["id"]
    assert derived["source"]["regions"][0]["style"] == "black"


def test_ranges_marked_on_the_timeline_are_cut_into_a_derived_asset(
    page: Page,
    api: httpx.Client,
    asset: dict[str, Any],
) -> None:
    video = open_asset(page, asset["id"])
    cut = page.get_by_role("form", name="Remove frames")
    slider = page.get_by_role("slider", name="Playback position")
    slider.focus()
    page.keyboard.press("Home")
    cut.get_by_role("button", name="Mark start at playhead").click()
    slider.focus()
    page.keyboard.press("ArrowRight")  # one second on
    page.wait_for_function("v => Math.abs(v.currentTime - 1) < 0.05", arg=video.element_handle())
    cut.get_by_role("button", name="Mark end at playhead").click()
    first = cut.get_by_role("group", name="Range 1")
    expect(first.get_by_label("Start (s)")).to_have_value("0")
    expect(first.get_by_label("End (s)")).to_have_value("1")

    lane = page.locator('.lane[data-lane="remove"]')
    drag(page, lane, (0.5, 0.5), (0.75, 0.5))
    second = cut.get_by_role("group", name="Range 2")
    assert abs(float(second.get_by_label("Start (s)").input_value()) - 2) < 0.1
    assert abs(float(second.get_by_label("End (s)").input_value()) - 3) < 0.1
    expect(lane.locator(".band")).to_have_count(2)
    cut.get_by_role("button", name="Create copy without these ranges").click()

    expect(cut.locator("li.job")).to_be_visible()
    derived_id = new_asset_of(page, cut, api)
    expect(derived_card(page, derived_id)).to_have_attribute("data-state", "ready", timeout=60_000)
    derived = api.get(f"/api/v1/media/{derived_id}").json()
    assert derived["parent_id"] == asset["id"]
    assert abs(derived["probe"]["duration"] - 2.0) < 0.3, derived["probe"]


def test_analysis_shows_cuts_black_silence_and_loudness_on_the_timeline(
    page: Page,
    asset: dict[str, Any],
) -> None:
    open_asset(page, asset["id"])
    panel = page.get_by_role("region", name="Analysis")
    panel.get_by_role("button", name="Run analysis").click()
    expect(panel.locator("li.job")).to_have_attribute("data-state", "succeeded", timeout=30_000)
    summary = panel.locator(".findings-summary")
    expect(summary).to_contain_text("2 scene cuts")
    expect(summary).to_contain_text("1 black stretch")
    expect(summary).to_contain_text("1 silent stretch")
    expect(panel.locator(".loudness")).to_contain_text("LUFS")
    expect(page.locator('.lane[data-lane="scenes"] .marker')).to_have_count(2)
    expect(page.locator('.lane[data-lane="black"] .band')).to_have_count(1)
    expect(page.locator('.lane[data-lane="silence"] .band')).to_have_count(1)

    panel.get_by_text("Black stretches (1)").click()
    panel.get_by_role("button", name=re.compile(r"^0:02")).click()
    video = page.locator("video").element_handle()
    page.wait_for_function("v => Math.abs(v.currentTime - 2) < 0.2", arg=video)
    screenshot(page, "asset-analysis-desktop")


def test_operation_forms_show_errors_next_to_their_fields(page: Page, asset: dict[str, Any]) -> None:
    open_asset(page, asset["id"])
    mask = page.get_by_role("form", name="Mask regions")
    mask.get_by_role("button", name="Create masked copy").click()
    expect(mask.locator("#mask-regions-error")).to_contain_text("Add at least one region")

    mask.get_by_role("button", name="Add a region").click()
    region = mask.get_by_role("group", name="Region 1")
    region.get_by_label("Start (s)").fill("9")
    mask.get_by_role("button", name="Create masked copy").click()  # the server refuses: after the end
    expect(region.locator(".field-error").last).to_contain_text("after the 4 s video ends")
    region.get_by_label("Start (s)").fill("2")
    region.get_by_label("End (s)").fill("1")
    mask.get_by_role("button", name="Create masked copy").click()
    expect(field_error(region, "End (s)")).to_contain_text("Must be after the start")

    cut = page.get_by_role("form", name="Remove frames")
    cut.get_by_role("button", name="Create copy without these ranges").click()
    expect(cut.locator("#cut-ranges-error")).to_have_text("Mark at least one range to remove.")


@pytest.fixture(scope="module")
def file_server(clip: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that serves the clip's directory."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_imported_url_becomes_a_ready_asset_in_the_grid(page: Page, file_server: str, clip: Path) -> None:
    page.goto("/")
    page.get_by_text("Or import from a URL").click()
    form = page.get_by_role("form", name="Import from a URL")
    form.get_by_label("Video URL").fill(f"{file_server}/{clip.name}")
    form.get_by_role("button", name="Import").click()
    link = form.get_by_role("status").get_by_role("link")
    expect(link).to_be_visible()
    media_id = (link.get_attribute("href") or "").rsplit("/", 1)[-1]
    card = page.locator(f'li.media-card[data-media-id="{media_id}"]')
    expect(card).to_be_visible()
    expect(card).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(card).to_contain_text("4.0 s")


def test_import_refused_by_the_server_shows_the_reason_next_to_the_url(page: Page) -> None:
    page.goto("/")
    page.get_by_text("Or import from a URL").click()
    form = page.get_by_role("form", name="Import from a URL")
    form.get_by_label("Video URL").fill("ftp://example.com/video.mp4")
    form.get_by_role("button", name="Import").click()
    expect(field_error(form, "Video URL")).to_contain_text("only http and https URLs can be imported")


def test_deleting_an_asset_asks_first_then_removes_it(page: Page, api: httpx.Client, clip: Path) -> None:
    media = upload(api, clip)
    page.goto(f"/#/media/{media['id']}")
    page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog", name="Delete this asset?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    assert api.get(f"/api/v1/media/{media['id']}").status_code == 200

    page.get_by_role("button", name="Delete…").click()
    dialog.get_by_role("button", name="Delete asset").click()
    expect(page).to_have_url(re.compile(r"#/media$"))
    wait_for(
        lambda: api.get(f"/api/v1/media/{media['id']}").status_code == 404,
        timeout_s=30,
        message="the asset to be gone",
    )


def test_media_pages_fit_a_phone_screen(phone_page: Page, asset: dict[str, Any]) -> None:
    page = phone_page
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    page.goto("/#/media")
    expect(page.locator(f'li.media-card[data-media-id="{asset["id"]}"]')).to_be_visible()
    assert page.evaluate(fits)
    screenshot(page, "media-library-phone")
    open_asset(page, asset["id"])
    page.get_by_role("form", name="Mask regions").get_by_role("button", name="Add a region").click()
    page.get_by_role("form", name="Remove frames").get_by_role("button", name="Mark end at playhead").click()
    assert page.evaluate(fits), "the asset page is wider than the phone"
    assert unlabeled_controls(page) == []
    screenshot(page, "asset-phone")
