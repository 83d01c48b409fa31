"""Assets have titles people can read, change and search: through the real API and worker."""

from __future__ import annotations

import httpx
import pytest

from mediajobs.testing.files import Served
from tests.media_api.clips import Clips
from tests.media_api.helpers import (
    get_media,
    import_url,
    problem,
    ready_asset,
    upload,
    wait_job,
    wait_media,
)
from tests.stacks import MediaStack


def test_an_upload_is_titled_by_its_file_name(file_api: httpx.Client, clips: Clips) -> None:
    created = upload(file_api, clips["small"], filename="Holiday in Provence.mp4")

    assert created["media"]["title"] == "Holiday in Provence"
    assert get_media(file_api, created["media"]["id"])["title"] == "Holiday in Provence"


def test_an_import_is_titled_by_its_url_then_by_the_page_title(
    file_api: httpx.Client, source: Served
) -> None:
    created = import_url(file_api, source.url("small.mp4"))
    assert created["media"]["title"] == "small"

    media = wait_media(file_api, created["media"]["id"], "ready", "failed")

    assert media["state"] == "ready", media
    assert media["title"] == media["source"]["title"] == "small"  # yt-dlp's title of a direct file


def test_patch_renames_an_asset_and_answers_it(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    media = ready_asset(file_stack, clips)

    response = file_api.patch(f"/api/v1/media/{media['id']}", json={"title": "  Board\tmeeting\n  March "})

    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Board meeting March"
    assert (
        response.json()["id"] == media["id"]
        and response.json()["hls"] == get_media(file_api, media["id"])["hls"]
    )
    assert get_media(file_api, media["id"])["title"] == "Board meeting March"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"title": ""}, "empty"),
        ({"title": " \u200b\t "}, "empty"),
        ({"title": "x" * 201}, "at most 200"),
        ({"title": 7}, "string"),
        ({"title": None}, "string"),
        ({"title": ["a"]}, "string"),
        ({}, "title"),
        ({"title": "ok", "state": "ready"}, "state"),
    ],
)
def test_patch_refuses_a_title_that_is_empty_too_long_or_not_text(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips, body: dict[str, object], says: str
) -> None:
    media = ready_asset(file_stack, clips)
    before = get_media(file_api, media["id"])["title"]

    refused = problem(file_api.patch(f"/api/v1/media/{media['id']}", json=body), 422)

    assert says in refused["detail"] or any(says in str(e) for e in refused["errors"]), refused
    assert get_media(file_api, media["id"])["title"] == before


def test_patch_of_an_unknown_asset_is_404(file_api: httpx.Client) -> None:
    problem(file_api.patch("/api/v1/media/00000000-0000-0000-0000-000000000000", json={"title": "x"}), 404)


def test_derived_assets_are_named_for_the_operation_that_made_them(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    created = upload(file_api, clips["small"], filename="holiday.mp4")
    source = wait_media(file_api, created["media"]["id"], "ready", "failed")
    assert source["state"] == "ready", source
    regions = [{"x": 0, "y": 0, "w": 64, "h": 64, "start": 1.0, "end": 2.5, "style": "black"}]

    masked = file_api.post(f"/api/v1/media/{source['id']}/mask", json={"regions": regions}).json()
    cut = file_api.post(
        f"/api/v1/media/{source['id']}/remove-frames",
        json={"ranges": [{"start": 3.0, "end": 3.5}, {"start": 0.5, "end": 1.0}]},
    ).json()
    clip = file_api.post(f"/api/v1/media/{source['id']}/clip", json={"start": 1.0, "end": 3.0}).json()

    assert masked["media"]["title"] == "holiday — masked 0:01–0:02.5"
    assert cut["media"]["title"] == "holiday — cut 0:00.5–0:01, 0:03–0:03.5"
    assert clip["media"]["title"] == "holiday — clip 0:01–0:03"
    for answer in (masked, cut, clip):
        wait_job(file_api, answer["job"]["id"], "succeeded", "failed")
        assert get_media(file_api, answer["media"]["id"])["title"] == answer["media"]["title"]


def test_the_library_is_searched_by_title_literally(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    media = ready_asset(file_stack, clips)
    marker = "Q3 100%_done*'); --"
    renamed = file_api.patch(f"/api/v1/media/{media['id']}", json={"title": f"Review {marker}"})
    assert renamed.status_code == 200, renamed.text

    def found(q: str) -> list[str]:
        response = file_api.get("/api/v1/media", params={"q": q, "limit": 500})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert found(marker.lower()) == [media["id"]]
    assert found("REVIEW Q3 100%_DONE") == [media["id"]]
    assert media["id"] not in found("100%%")
    assert media["id"] not in found("q3_100")
    assert found("no asset has this title at all") == []
    too_long = problem(file_api.get("/api/v1/media", params={"q": "x" * 201}), 422)
    assert "q" in str(too_long["errors"]), too_long
