"""What an asset shows while its ladder is still being made: its thumbnail, and a true bandwidth for the
rendition that already plays (the source's own stream, copied)."""

from __future__ import annotations

import time

import httpx

from tests.media_api.clips import Clips
from tests.media_api.helpers import JSON, fetch, get_media, upload, wait_media
from tests.media_api.stacks import MediaStack


def watch_processing(api: httpx.Client, media_id: str, timeout_s: float = 120) -> list[JSON]:
    """Every state of the asset seen while it is processing (polled as fast as the API answers)."""
    seen: list[JSON] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        media = get_media(api, media_id)
        if media["state"] != "processing":
            return seen
        seen.append(media)
    raise AssertionError(f"media {media_id} still processing after {timeout_s} s")


def test_the_thumbnail_shows_while_the_ladder_is_still_being_made(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    created = upload(file_api, clips["long"])  # 12 s 720p: its 480p and 360p rungs take a while here

    seen = watch_processing(file_api, created["media"]["id"])

    early = [m for m in seen if m["thumbnail_url"]]
    assert early, "the thumbnail appeared only once the asset was ready"
    assert any(not v["ready"] for v in early[0]["hls"]["variants"]), "no rung was still being encoded"
    assert fetch(file_api, early[0]["thumbnail_url"]).content[:3] == b"\xff\xd8\xff"
    ready = wait_media(file_api, created["media"]["id"], "ready", "failed")
    assert (
        ready["state"] == "ready"
        and ready["thumbnail_url"].split("?")[0] == early[0]["thumbnail_url"].split("?")[0]
    )
    file_stack.assert_temp_empty()


def test_the_copied_rung_says_its_own_bandwidth_while_the_others_are_encoded(
    file_api: httpx.Client, clips: Clips
) -> None:
    created = upload(file_api, clips["long"])

    seen = watch_processing(file_api, created["media"]["id"])

    playing = [m for m in seen if m["hls"] and m["hls"]["variants"][0]["ready"]]
    assert playing, "the copied rung never played before the ladder was done"
    final = wait_media(file_api, created["media"]["id"], "ready", "failed")["hls"]["variants"][0]
    early = playing[0]["hls"]["variants"][0]
    assert early["height"] == final["height"] == 720
    # Measured from the copied segments then, from all of them at the end: the same stream, close figures.
    assert early["bandwidth"] > 300_000, early
    assert 0.5 * final["bandwidth"] <= early["bandwidth"] <= 2 * final["bandwidth"], (early, final)
