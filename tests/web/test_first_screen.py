"""The first screen and what people read in it, in Chromium at desktop and phone sizes: the library as the
landing page, titles (plain text, renamed, searched), plain reasons, Retry only where it helps, deleted
assets, the upload limit before an upload, portrait rungs. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from mediajobs.testing.servers import wait_for
from mediajobs.testing.stacks import Stack
from tests.web.conftest import DESKTOP, PHONE, open_page

pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(1)>"


def ffmpeg(out: Path, size: str, seconds: float = 2.0) -> Path:
    source = f"testsrc2=size={size}:rate=25:duration={seconds}"
    args = [
        "ffmpeg",
        "-y",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        source,
        "-f",
        "lavfi",
        "-i",
        f"sine=d={seconds}",
    ]
    subprocess.run([*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)], check=True)
    return out


def upload(api: httpx.Client, path: Path, name: str | None = None) -> dict[str, Any]:
    response = api.post(
        "/api/v1/media/uploads", params={"filename": name or path.name}, content=path.read_bytes()
    )
    assert response.status_code == 202, response.text
    return response.json()["media"]  # type: ignore[no-any-return]


def settled(api: httpx.Client, media_id: str, timeout_s: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        media = api.get(f"/api/v1/media/{media_id}").json()
        return media if media["state"] in ("ready", "failed") else None

    return wait_for(check, timeout_s=timeout_s, message=f"media {media_id} to settle")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def holiday(web_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ready 2 s 640x360 asset titled "holiday"."""
    clip = ffmpeg(tmp_path_factory.mktemp("first") / "holiday.mp4", "640x360")
    with web_stack.client() as api:
        media = settled(api, upload(api, clip)["id"])
    assert media["state"] == "ready" and media["title"] == "holiday", media
    return media


def top(page: Page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box["y"]


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_the_library_is_the_first_page_with_the_upload_area_on_top_and_assets_right_below(
    browser: Browser, web_stack: Stack, holiday: dict[str, Any], tmp_path: Path, size: str
) -> None:
    viewport = PHONE if size == "phone" else DESKTOP
    page, errors = open_page(browser, web_stack.api_url, viewport)
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Media library")
    expect(page.get_by_role("link", name="Media", exact=True)).to_have_attribute("aria-current", "page")
    card = page.locator("li.media-card").first
    expect(card).to_be_visible()
    card.locator(".thumb-frame img").evaluate("img => img.decode()")  # its thumbnail is on the screen too
    page.screenshot(path=str(tmp_path / f"library-{size}.png"))

    upload_area, first_card = top(page, ".intake"), top(page, "li.media-card")
    assert upload_area < 250, f"the upload area starts {upload_area:.0f} px down"
    assert upload_area < first_card < viewport["height"] - 100, (
        f"the first asset's top is at {first_card:.0f} px of a {viewport['height']} px screen"
    )
    expect(
        page.get_by_role("form", name="Upload a file").get_by_role("button", name="Upload")
    ).to_be_in_viewport()
    expect(page.get_by_role("form", name="Import from a URL")).to_be_hidden()  # folded under "Or import ..."
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.context.close()
    assert not errors


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_the_jobs_page_shows_the_work_first_with_the_test_form_folded(
    browser: Browser, web_stack: Stack, holiday: dict[str, Any], tmp_path: Path, size: str
) -> None:
    viewport = PHONE if size == "phone" else DESKTOP
    page, errors = open_page(browser, web_stack.api_url, viewport)
    page.goto("/#/jobs")
    first_job = page.locator("li.job").first
    expect(first_job).to_be_visible()
    page.screenshot(path=str(tmp_path / f"jobs-{size}.png"))

    expect(page.get_by_role("form", name="Submit a test job")).to_be_hidden()
    assert not page.locator("details.submit-details").evaluate("el => el.open")
    assert top(page, "li.job") < viewport["height"] / 2, "the first job is pushed down the screen"
    page.context.close()
    assert not errors


def test_job_rows_name_their_asset_by_its_title(page: Page, holiday: dict[str, Any]) -> None:
    page.goto("/#/jobs")
    row = page.locator(f"li.job:has(a.job-asset[href='#/media/{holiday['id']}'])").first
    expect(row.locator(".job-asset")).to_have_text("holiday")


def test_a_title_is_plain_text_everywhere_it_shows(
    browser: Browser, web_stack: Stack, tmp_path: Path, api: httpx.Client
) -> None:
    media = settled(api, upload(api, ffmpeg(tmp_path / "x.mp4", "320x240"), name=f"{HOSTILE}.mp4")["id"])
    assert media["title"] == HOSTILE
    dialogs: list[str] = []
    for viewport in (DESKTOP, PHONE):
        page, errors = open_page(browser, web_stack.api_url, viewport)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for route in ("/", f"/#/media/{media['id']}", "/#/jobs", f"/#/jobs/{media['jobs'][0]}"):
            page.goto(route)
            expect(page.get_by_text(HOSTILE).first).to_be_visible()
            assert page.locator("img[src='x']").count() == 0, route
        page.screenshot(path=str(tmp_path / f"hostile-title-{viewport['width']}.png"))
        page.context.close()
        assert not errors
    assert dialogs == [], "markup in a title ran"


def test_an_asset_is_renamed_on_its_page_and_found_by_search(
    page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    media = settled(api, upload(api, ffmpeg(tmp_path / "raw.mp4", "320x240"), name="raw_0042.mp4")["id"])
    page.goto(f"/#/media/{media['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("raw_0042")
    page.get_by_role("button", name="Rename").click()
    title = page.get_by_label("Title", exact=True)
    title.fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".rename-form .field-error")).to_have_text("Give the asset a name.")
    title.fill("x" * 201)
    title.evaluate("el => el.removeAttribute('maxlength')")
    title.fill("x" * 201)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".rename-form .field-error")).to_contain_text("at most 200")
    title.fill("Garden party 100%")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Garden party 100%")
    assert api.get(f"/api/v1/media/{media['id']}").json()["title"] == "Garden party 100%"

    page.goto("/")
    page.get_by_label("Search titles").fill("PARTY 100%")
    cards = page.locator("li.media-card")
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-media-id", media["id"])
    page.get_by_label("Search titles").fill("party 100%%")
    expect(page.get_by_text("No assets titled with “party 100%%”.")).to_be_visible()


def test_a_failed_asset_shows_why_and_offers_no_retry_that_cannot_help(
    page: Page, api: httpx.Client, holiday: dict[str, Any], tmp_path: Path
) -> None:
    data = Path(tmp_path / "cut.mp4")
    whole = ffmpeg(tmp_path / "whole.mp4", "320x240").read_bytes()
    data.write_bytes(whole[: len(whole) // 2])
    media = settled(api, upload(api, data)["id"])
    assert media["state"] == "failed", media

    page.goto("/")
    card = page.locator(f'li.media-card[data-media-id="{media["id"]}"]')
    expect(card.locator(".media-reason")).to_have_text(media["error"]["message"])
    expect(card.locator(".media-reason")).to_contain_text("the file is")
    page.goto(f"/#/media/{media['id']}")
    job = page.locator("li.job").first
    expect(job).to_have_attribute("data-state", "failed")
    expect(job.locator(".job-error")).to_contain_text("(unsupported_media)")
    expect(job.get_by_role("button", name="Retry", exact=False)).to_be_hidden()
    expect(page.locator(".asset-info")).not_to_contain_text("ffprobe")


def test_a_deleted_asset_page_says_so_instead_of_loading_forever(
    page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    media = settled(api, upload(api, ffmpeg(tmp_path / "gone.mp4", "320x240"))["id"])
    page.goto(f"/#/media/{media['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("gone")

    assert api.delete(f"/api/v1/media/{media['id']}").status_code == 202

    expect(page.get_by_role("heading", level=1)).to_have_text("Deleted asset", timeout=30_000)
    expect(page.get_by_role("status").filter(has_text="“gone” was deleted")).to_be_visible()
    expect(page.get_by_text("Loading…")).to_have_count(0)
    page.goto("/#/media/00000000-0000-0000-0000-000000000000")
    expect(page.get_by_role("heading", level=1)).to_have_text("No such asset")
    expect(page.get_by_text("Loading…")).to_have_count(0)


def test_the_upload_limit_shows_before_an_upload_and_a_bigger_file_is_stopped_here(
    page: Page, tmp_path: Path
) -> None:
    page.goto("/")
    form = page.get_by_role("form", name="Upload a file")
    expect(form).to_contain_text("Up to 10 GiB.")
    # A file over the limit is refused before a byte is sent (the server would say 413 too).
    page.evaluate("""() => {
        const input = document.querySelector('.intake input[type=file]');
        const big = new File([new Uint8Array(16)], 'huge.mp4', {type: 'video/mp4'});
        Object.defineProperty(big, 'size', {value: 11 * 1024 ** 3});
        const files = new DataTransfer();
        files.items.add(big);
        Object.defineProperty(input, 'files', {value: files.files});
    }""")
    form.get_by_role("button", name="Upload").click()
    expect(form.locator(".field-error")).to_have_text(
        "huge.mp4 is 11 GiB; this server takes files up to 10 GiB."
    )


def test_a_derived_asset_shows_the_operation_that_made_it(
    page: Page, api: httpx.Client, holiday: dict[str, Any], tmp_path: Path
) -> None:
    regions = [{"x": 0, "y": 0, "w": 64, "h": 48, "start": 0.5, "end": 1.5, "style": "black"}]
    answer = api.post(f"/api/v1/media/{holiday['id']}/mask", json={"regions": regions}).json()
    page.goto(f"/#/media/{answer['media']['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("holiday — masked 0:00.5–0:01.5")
    facts = page.locator("dl.facts")
    expect(facts.locator("dt:text-is('Masked') + dd")).to_have_text("black 64×48 px at 0,0, 0:00.5–0:01.5")  # noqa: RUF001
    expect(facts.locator("dt:text-is('Derived from') + dd")).to_have_text("holiday")
    page.locator(".asset-info").screenshot(path=str(tmp_path / "derived-about.png"))


def test_a_portrait_stream_names_its_rungs_by_the_shorter_side(
    page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    media = settled(api, upload(api, ffmpeg(tmp_path / "tall.mp4", "480x854"))["id"], timeout_s=180)
    assert media["state"] == "ready", media
    heights = sorted(v["height"] for v in media["hls"]["variants"])
    assert heights == [640, 854], heights  # the ladder's rungs: 360p and the source's own 480p

    page.goto(f"/#/media/{media['id']}")
    quality = page.get_by_label("Quality")
    expect(quality.locator("option")).to_have_count(3)
    labels = quality.locator("option").all_text_contents()
    assert labels[0] == "Auto" and sorted(label.split(" ")[0] for label in labels[1:]) == ["360p", "480p"], (
        labels
    )
    expect(page.locator("dl.facts")).to_contain_text("480p, 360p")
