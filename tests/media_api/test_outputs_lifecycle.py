"""What an asset makes of its ladder, over its life: deletion leaves no object of it, a reprocess rebuilds
every output from the new ladder and removes the old ones, and with auth on each opens by playback token."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from mediajobs.testing.servers import wait_for
from tests.media_api.clips import Clips
from tests.media_api.helpers import JSON, fetch, get_media, upload, wait_gone, wait_job, wait_media
from tests.media_api.outputs import by_type, outputs_ready
from tests.stacks import STORAGES, MediaStack, StackPool
from tests.toolkit.indexclips import counter_clip, gray, index_of

KEY = "outputs-key-0123456789"


def version_of(media: JSON) -> str:
    return str(media["hls"]["master_url"]).split("/hls/", 1)[1].split("/", 1)[0]


def make_everything(api: httpx.Client, media: JSON) -> None:
    """Every kind of output: a still, an animation, a poster, another rung's MP4 (besides the defaults)."""
    base = f"/api/v1/media/{media['id']}"
    # On S3 storage a stored image is a redirect to the bucket, as thumbnails are.
    still = api.get(f"{base}/images/thumbnail.webp", params={"time": 1.5}, follow_redirects=True)
    assert still.status_code == 200, still.text
    animation = api.get(f"{base}/images/animated.gif", params={"end": 1, "fps": 2}, follow_redirects=True)
    assert animation.status_code == 200, animation.text
    assert api.put(f"{base}/poster", json={"time": 2.0}).status_code == 200
    answer = api.post(f"{base}/downloads", json={"type": "mp4", "height": 480})
    assert answer.status_code == 202, answer.text
    wait_job(api, answer.json()["job"]["id"], "succeeded", timeout_s=90)


def test_delete_removes_every_output(media_stack: MediaStack, api: httpx.Client, clips: Clips) -> None:
    media = outputs_ready(api, upload(api, clips["long"])["media"]["id"])
    make_everything(api, media)
    prefix = f"media/{media['id']}/"
    stored = media_stack.stored.keys(prefix)
    for part in ("downloads/", "storyboard/", "images/", "thumbnail/poster-"):
        assert any(part in key for key in stored), (part, stored)
    assert api.delete(f"/api/v1/media/{media['id']}").status_code == 202
    wait_gone(api, media["id"])
    wait_for(lambda: media_stack.stored.keys(prefix) == [], timeout_s=15, message=f"{prefix} to be empty")
    media_stack.assert_temp_empty()


def test_reprocess_rebuilds_every_output_and_removes_the_old_ones(
    media_stack: MediaStack, api: httpx.Client, clips: Clips, tmp_path: Path
) -> None:
    path = counter_clip(tmp_path / "counter.mp4", seconds=6.0)
    media = outputs_ready(api, upload(api, path)["media"]["id"])
    make_everything_small(api, media)
    old = version_of(media)
    poster = get_media(api, media["id"])["thumbnail_url"]
    answer = api.post(f"/api/v1/media/{media['id']}/reprocess")
    assert answer.status_code == 202, answer.text
    wait_job(api, answer.json()["job"]["id"], "succeeded", timeout_s=120)

    def rebuilt() -> JSON | None:
        found = outputs_ready(api, media["id"])
        return found if version_of(found) != old else None

    after: JSON = wait_for(rebuilt, timeout_s=60, message="the new version's outputs")  # type: ignore[assignment]
    new = version_of(after)
    assert [d["type"] for d in after["downloads"]] == ["original", "mp4", "audio"]
    for d in after["downloads"][1:]:
        assert f"/downloads/{new}/" in d["url"] and fetch(api, d["url"]).content
    assert f"/storyboard/{new}/" in after["storyboard"]["vtt_url"]
    # The chosen poster stays (same original, same frame).
    assert after["thumbnail_url"] == poster
    prefix = f"media/{media['id']}/"

    def old_gone() -> bool:
        return not [k for k in media_stack.stored.keys(prefix) if f"/{old}" in k]

    wait_for(old_gone, timeout_s=30, message=f"the files of version {old} to go")
    still = api.get(
        f"/api/v1/media/{media['id']}/images/thumbnail.png", params={"time": 3.0}, follow_redirects=True
    )
    assert still.status_code == 200 and index_of(gray(still.content)) == 75
    assert media_stack.stored.keys(f"{prefix}images/{new}/")


def make_everything_small(api: httpx.Client, media: JSON) -> None:
    base = f"/api/v1/media/{media['id']}"
    still = api.get(f"{base}/images/thumbnail.jpg", params={"time": 1.0}, follow_redirects=True)
    assert still.status_code == 200, still.text
    animation = api.get(f"{base}/images/animated.webp", params={"end": 1, "fps": 2}, follow_redirects=True)
    assert animation.status_code == 200, animation.text
    assert api.put(f"{base}/poster", json={"time": 2.0}).status_code == 200


@pytest.fixture(params=STORAGES)
def keyed(request: pytest.FixtureRequest, stack_pool: StackPool) -> MediaStack:
    return stack_pool.get(f"outputs-keyed-{request.param}", request.param, api_keys=KEY)


def test_outputs_open_by_playback_token_without_the_key(keyed: MediaStack, clips: Clips) -> None:
    with keyed.client() as authed:
        authed.headers["Authorization"] = f"Bearer {KEY}"
        media = outputs_ready(authed, upload(authed, clips["small"], filename="trip.mp4")["media"]["id"])
    with httpx.Client(timeout=30) as anonymous:
        names = set()
        for d in media["downloads"]:
            assert "token=" in d["url"], d
            assert fetch(anonymous, d["url"]).content
            disposition = fetch(anonymous, f"{d['url']}&download=1").headers["content-disposition"]
            assert disposition.startswith("attachment;"), disposition
            names.add(disposition.split('filename="', 1)[1].split('"', 1)[0])
        assert names == {"trip.mp4", "trip-360p.mp4", "trip.m4a"}
        board = media["storyboard"]
        vtt = fetch(anonymous, board["vtt_url"]).text
        references = [line for line in vtt.splitlines() if "#xywh=" in line]
        assert references and all("token=" in line for line in references), vtt[:300]
        # A player resolves each cue against the VTT's URL: the sheet opens with the token it carries.
        assert fetch(anonymous, urljoin(board["vtt_url"], references[0])).content
        base = f"{keyed.stack.api_url}/api/v1/media/{media['id']}/images/thumbnail.jpg"
        token = board["vtt_url"].split("token=", 1)[1]
        assert fetch(anonymous, f"{base}?time=1&token={token}").content.startswith(b"\xff\xd8")
        assert anonymous.get(f"{base}?time=1").status_code == 401
        assert anonymous.get(f"{base}?time=1&token=1.forged").status_code == 403


def test_s3_download_redirect_saves_under_the_readable_name(stack_pool: StackPool, clips: Clips) -> None:
    stack = stack_pool.get("main-s3", "s3", import_allow_private="true", hls_swap_grace_s="1")
    with stack.client() as api:
        media = outputs_ready(api, upload(api, clips["small"], filename="beach.mp4")["media"]["id"])
        [mp4] = by_type(media, "mp4")
        redirect = api.get(f"{mp4['url']}?download=1")
        assert redirect.status_code == 307, redirect.text
        answer = fetch(api, f"{mp4['url']}?download=1")  # from the bucket, which names the file as told
        assert answer.headers["content-disposition"].startswith("attachment;"), answer.headers
        assert 'filename="beach-360p.mp4"' in answer.headers["content-disposition"]
        assert len(answer.content) == mp4["size"]
        assert wait_media(api, media["id"], "ready")["id"] == media["id"]
