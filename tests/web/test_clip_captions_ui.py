"""Captions and clips in a real browser: a track added on the asset page shows its cues at their times in the
page's player (hls.js), hostile cue text stays text; the clip tool makes a cropped clip of a range."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from mediajobs.testing.stacks import Stack
from tests.web.conftest import drag, screenshot
from tests.web.test_media_ui import clip, derived_card, new_asset_of, open_asset, upload, wait_ready

__all__ = ["clip"]

pytestmark = pytest.mark.slow

SRT = """1
00:00:00,600 --> 00:00:01,000
first cue

2
00:00:02,200 --> 00:00:02,600
second <i>cue</i> <img src=x onerror="window.pwned=1"><script>window.pwned=2</script>
"""

ACTIVE = """([v, t]) => {
  const tracks = [...v.textTracks].filter((track) => track.mode === "showing");
  return tracks.flatMap((track) => [...(track.activeCues || [])].map((cue) => cue.text)).join("|");
}"""


@pytest.fixture(scope="module")
def captioned(web_stack: Stack, clip: Path) -> dict[str, Any]:
    """A ready 4 s asset of its own: the test adds and removes its caption tracks."""
    with web_stack.client() as api:
        return wait_ready(api, upload(api, clip)["id"])


def shown_at(page: Page, video: Locator, t: float) -> str:
    """The text of the cues the showing track has active once the paused player stands at `t`."""
    page.evaluate("([v, t]) => { v.pause(); v.currentTime = t; }", [video.element_handle(), t])
    page.wait_for_function(
        "([v, t]) => !v.seeking && Math.abs(v.currentTime - t) < 0.01 && v.readyState >= 2",
        arg=[video.element_handle(), t],
    )
    # Active cues follow the time on the element's next time update.
    page.wait_for_timeout(300)
    return str(page.evaluate(ACTIVE, [video.element_handle(), t]))


def test_captions_added_on_the_page_show_each_cue_at_its_time_in_the_player(
    page: Page, api: httpx.Client, captioned: dict[str, Any], tmp_path: Path
) -> None:
    srt = tmp_path / "english.srt"
    srt.write_text(SRT)
    video = open_asset(page, captioned["id"])
    form = page.get_by_role("form", name="Captions")
    form.get_by_label("Caption file (SRT or WebVTT)").set_input_files(str(srt))
    form.get_by_label("Language").fill("en")
    form.get_by_label("Label").fill("English")
    form.get_by_role("button", name="Add captions").click()
    expect(form.get_by_role("list", name="Caption tracks")).to_contain_text("English")
    expect(form.get_by_role("list", name="Caption tracks")).to_contain_text("en · 2 cues")

    menu = page.get_by_role("combobox", name="Captions", exact=True)
    expect(menu.locator("option")).to_have_text(["Off", "English (en)"], timeout=20_000)
    menu.select_option(label="English (en)")
    page.wait_for_function("v => v.readyState >= 2", arg=video.element_handle(), timeout=20_000)
    wait = "v => [...v.textTracks].some((t) => t.mode === 'showing' && t.cues && t.cues.length === 2)"
    page.wait_for_function(wait, arg=video.element_handle(), timeout=20_000)

    assert shown_at(page, video, 0.8) == "first cue"
    assert shown_at(page, video, 0.3) == ""
    assert shown_at(page, video, 1.3) == ""
    second = shown_at(page, video, 2.4)
    assert second.startswith("second <i>cue</i>") and "<img" not in second and "<script" not in second, second
    assert shown_at(page, video, 2.9) == ""
    assert page.evaluate("() => window.pwned") is None
    screenshot(page, "asset-captions-desktop")

    track = api.get(f"/api/v1/media/{captioned['id']}/captions").json()["items"][0]
    form.get_by_role("button", name="Remove English").click()
    expect(form.get_by_role("list", name="Caption tracks")).to_contain_text("No captions yet.")
    expect(menu.locator("option")).to_have_text(["Off"], timeout=20_000)
    assert api.get(f"/api/v1/media/{captioned['id']}/captions").json()["items"] == []
    assert track["label"] == "English"


def test_a_bad_caption_file_shows_the_line_to_fix_next_to_the_file_field(
    page: Page, captioned: dict[str, Any], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:01,000 --> 00:00:00,500\nbackwards\n")
    open_asset(page, captioned["id"])
    form = page.get_by_role("form", name="Captions")
    form.get_by_label("Caption file (SRT or WebVTT)").set_input_files(str(bad))
    form.get_by_label("Language").fill("en")
    form.get_by_role("button", name="Add captions").click()
    control_id = form.get_by_label("Caption file (SRT or WebVTT)").get_attribute("id")
    expect(form.locator(f"#{control_id}-error")).to_contain_text(re.compile(r"line 2: the cue ends"))


def test_the_clip_tool_makes_a_cropped_clip_of_the_range_dragged_on_the_timeline(
    page: Page, api: httpx.Client, captioned: dict[str, Any]
) -> None:
    open_asset(page, captioned["id"])
    # As a person would: the player has its picture before the range is dragged.
    page.wait_for_function("() => (document.querySelector('video') || {}).readyState >= 2")
    form = page.get_by_role("form", name="Clip")
    lane = page.locator('.lane[data-lane="clip"]')
    drag(page, lane, (0.25, 0.5), (0.75, 0.5))
    assert abs(float(form.get_by_label("Clip start (s)").input_value()) - 1) < 0.1
    assert abs(float(form.get_by_label("Clip end (s)").input_value()) - 3) < 0.1
    expect(lane.locator(".band")).to_have_count(1)
    form.get_by_label("Clip start (s)").fill("1")
    form.get_by_label("Clip end (s)").fill("3")
    form.get_by_label("Aspect").select_option("9:16")
    expect(page.locator(".crop-preview")).to_be_visible()
    screenshot(page, "asset-clip-desktop")
    form.get_by_role("button", name="Create clip").click()

    expect(form.locator("li.job")).to_be_visible()
    derived_id = new_asset_of(page, form, api)
    expect(derived_card(page, derived_id)).to_have_attribute("data-state", "ready", timeout=90_000)
    derived = api.get(f"/api/v1/media/{derived_id}").json()
    assert derived["parent_id"] == captioned["id"]
    assert derived["source"]["crop"] == {"aspect": "9:16", "x": 0.5}
    assert (derived["probe"]["width"], derived["probe"]["height"]) == (202, 360)
    assert abs(derived["probe"]["duration"] - 2.0) < 0.05


def test_clip_times_outside_the_video_are_refused_next_to_their_field(
    page: Page, captioned: dict[str, Any]
) -> None:
    open_asset(page, captioned["id"])
    form = page.get_by_role("form", name="Clip")
    form.get_by_label("Clip start (s)").fill("2")
    form.get_by_label("Clip end (s)").fill("1")
    form.get_by_role("button", name="Create clip").click()
    control_id = form.get_by_label("Clip end (s)").get_attribute("id")
    expect(form.locator(f"#{control_id}-error")).to_contain_text("Must be after the start.")
