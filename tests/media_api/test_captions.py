"""Caption tracks through the API: stored as WebVTT, listed, offered in the HLS master in sync, removed."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from mediajobs.testing.servers import wait_for
from mediajobs.toolkit import subtitles
from tests.media_api.clips import Clips
from tests.media_api.helpers import (
    JSON,
    fetch,
    get_media,
    names_field,
    playlist_uris,
    problem,
    ready_asset,
    upload,
    wait_gone,
    wait_job,
    wait_media,
)
from tests.media_api.test_playback_tokens import KEY, keyed_client, token_of
from tests.stacks import MediaStack, StackPool

SRT = b"""1
00:00:00,500 --> 00:00:01,500
Hello <b>there</b> <script>alert(1)</script>

2
00:00:02,000 --> 00:00:03,000
<img src=x onerror=alert(1)>second & last
"""


def add(api: httpx.Client, media_id: str, data: bytes, status: int = 201, **params: str) -> httpx.Response:
    params = {"language": "en", **params}
    response = api.post(
        f"/api/v1/media/{media_id}/captions",
        params=params,
        content=data,
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == status, response.text
    return response


def own_asset(api: httpx.Client, clips: Clips) -> JSON:
    """A ready asset of its own (captions change what its master lists)."""
    return wait_media(api, upload(api, clips["small"])["media"]["id"], "ready", "failed")


def subtitles_entries(master: str) -> list[dict[str, str]]:
    return [
        dict(re.findall(r'([A-Z-]+)="?([^",]*)"?', line.split(":", 1)[1]))
        for line in master.splitlines()
        if line.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")
    ]


def first_video_pts(api: httpx.Client, master_url: str, master: str, tmp_path: Path) -> int:
    variant_url = urljoin(master_url, playlist_uris(master)[0])  # the top video rendition
    variant = fetch(api, variant_url).text
    segment = tmp_path / "first.ts"
    segment.write_bytes(fetch(api, urljoin(variant_url, playlist_uris(variant)[0])).content)
    args = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1"]
    out = subprocess.run([*args, "-show_entries", "packet=pts", "-of", "csv=p=0", str(segment)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(out.split()[0].strip(","))


def test_a_caption_file_becomes_a_webvtt_track_in_the_media_json_and_the_master(
    media_stack: MediaStack, api: httpx.Client, clips: Clips, tmp_path: Path
) -> None:
    media = own_asset(api, clips)
    created = add(api, media["id"], SRT, language="en-GB", label="English (UK)")
    track = created.json()
    assert set(track) == {"id", "language", "label", "url", "cues"}
    assert (track["language"], track["label"], track["cues"]) == ("en-GB", "English (UK)", 2)
    assert created.headers["Location"] == f"/api/v1/media/{media['id']}/captions/{track['id']}"
    assert api.get(created.headers["Location"]).json() == track
    assert api.get(f"/api/v1/media/{media['id']}/captions").json() == {"items": [track], "next_cursor": None}
    assert get_media(api, media["id"])["captions"] == [track]

    vtt = fetch(api, track["url"])
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.headers["x-content-type-options"] == "nosniff"
    text = vtt.text
    assert text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:")
    assert "00:00:00.500 --> 00:00:01.500\nHello <b>there</b> alert(1)" in text
    assert "second &amp; last" in text and "<script" not in text and "<img" not in text

    master_url = media["hls"]["master_url"]
    master = fetch(api, master_url).text
    [entry] = subtitles_entries(master)
    assert (entry["NAME"], entry["LANGUAGE"], entry["DEFAULT"]) == ("English (UK)", "en-GB", "NO")
    assert all(line.endswith('SUBTITLES="subs"') for line in master.splitlines() if "STREAM-INF" in line)
    playlist_url = urljoin(master_url, entry["URI"])
    playlist = fetch(api, playlist_url).text
    assert "#EXT-X-ENDLIST" in playlist
    [segment] = playlist_uris(playlist)
    assert fetch(api, urljoin(playlist_url, segment)).text == text
    # Cue time 0 is where the segments show the source's first frame: the cues are in sync with it.
    mpegts = int(re.search(r"MPEGTS:(\d+)", text)[1])  # type: ignore[index]
    assert mpegts == first_video_pts(api, master_url, master, tmp_path)


def test_deleting_a_track_drops_it_from_the_master_and_then_its_files(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    media = own_asset(file_api, clips)
    first = add(file_api, media["id"], SRT, label="One").json()
    second = add(file_api, media["id"], SRT, language="fr", label="Deux").json()
    master_url = media["hls"]["master_url"]
    assert [e["NAME"] for e in subtitles_entries(fetch(file_api, master_url).text)] == ["One", "Deux"]

    assert file_api.delete(f"/api/v1/media/{media['id']}/captions/{first['id']}").status_code == 204
    assert [e["NAME"] for e in subtitles_entries(fetch(file_api, master_url).text)] == ["Deux"]
    assert get_media(file_api, media["id"])["captions"] == [second]
    problem(file_api.get(f"/api/v1/media/{media['id']}/captions/{first['id']}"), 404)
    problem(file_api.delete(f"/api/v1/media/{media['id']}/captions/{first['id']}"), 404)
    prefix = f"media/{media['id']}/captions/"
    wait_for(
        lambda: (
            file_stack.stored.keys(prefix) == [f"{prefix}{second['id']}.m3u8", f"{prefix}{second['id']}.vtt"]
        ),
        timeout_s=30,
        message="the deleted track's files to go after the grace period",
    )
    # No track left: the master is the stream's own again.
    file_api.delete(f"/api/v1/media/{media['id']}/captions/{second['id']}")
    assert "SUBTITLES" not in fetch(file_api, master_url).text


def test_deleting_the_asset_leaves_no_object_of_its_tracks(
    media_stack: MediaStack, api: httpx.Client, clips: Clips
) -> None:
    media = own_asset(api, clips)
    add(api, media["id"], SRT)
    add(api, media["id"], SRT, language="de")
    assert len(media_stack.stored.keys(f"media/{media['id']}/captions/")) == 4
    assert api.delete(f"/api/v1/media/{media['id']}").status_code == 202
    wait_gone(api, media["id"])
    assert media_stack.stored.keys(f"media/{media['id']}/") == []
    problem(api.get(f"/api/v1/media/{media['id']}/captions"), 404)


def test_a_reprocess_keeps_the_tracks_in_the_new_master(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    media = own_asset(file_api, clips)
    track = add(file_api, media["id"], SRT).json()
    response = file_api.post(f"/api/v1/media/{media['id']}/reprocess", json={})
    assert wait_job(file_api, response.json()["job"]["id"], "succeeded", "failed")["state"] == "succeeded"
    after = get_media(file_api, media["id"])
    assert after["hls"]["master_url"] != media["hls"]["master_url"]
    master = fetch(file_api, after["hls"]["master_url"]).text
    [entry] = subtitles_entries(master)
    playlist_url = urljoin(after["hls"]["master_url"], entry["URI"])
    segment = playlist_uris(fetch(file_api, playlist_url).text)[0]
    assert "Hello <b>there</b>" in fetch(file_api, urljoin(playlist_url, segment)).text
    assert after["captions"] == [track]


HOSTILE = [
    (b"WEBVTT\n\n99:99:99.999 --> 100:00:00.000\nx\n", "line 3"),
    (b"1\n00:00:02,000 --> 00:00:01,000\nbackwards\n", "line 2"),
    (b"WEBVTT\n\n00:01.000 --> 00:02.000\na\x00b\n", "NUL"),
    (b"<html><script>alert(1)</script></html>", "line 1"),
    (b"1\n00:00:01,000 --> 00:00:02,000\n" + b"x" * 10_000 + b"\n", "line 3"),
    (("WEBVTT\n\n" + "00:00.000 --> 00:00.001\nx\n\n" * 75_000).encode(), "split the file"),
    (b"1\n00:01:00,000 --> 00:01:02,000\nafter the 4 s video\n", "after the media ends"),
    (b"", "no cues"),
]


@pytest.mark.parametrize(("data", "says"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_a_bad_caption_file_is_refused_naming_what_to_fix_and_stores_nothing(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips, data: bytes, says: str
) -> None:
    media = ready_asset(file_stack, clips)
    answer = problem(add(file_api, media["id"], data, status=422), 422)
    assert says in answer["detail"] and names_field(answer, "body"), answer
    assert file_api.get(f"/api/v1/media/{media['id']}/captions").json()["items"] == []
    assert file_stack.stored.keys(f"media/{media['id']}/captions/") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [({"language": "english language"}, "language"), ({"language": ""}, "language"),
     ({"label": "x" * 150}, "label"), ({"label": "a\x07b"}, "label")],
)  # fmt: skip
def test_a_bad_language_or_label_is_refused(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips, params: dict[str, str], field: str
) -> None:
    media = ready_asset(file_stack, clips)
    assert names_field(problem(add(file_api, media["id"], SRT, status=422, **params), 422), field)


def test_a_file_over_2_mb_or_sent_as_a_form_is_refused(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    media = ready_asset(file_stack, clips)
    big = b"1\n00:00:01,000 --> 00:00:02,000\nx\n\n" * (subtitles.MAX_BYTES // 30)
    problem(add(file_api, media["id"], big, status=413), 413)
    url = f"/api/v1/media/{media['id']}/captions?language=en"
    problem(file_api.post(url, files={"file": ("a.srt", SRT, "application/x-subrip")}), 415)
    assert file_stack.stored.keys(f"media/{media['id']}/captions/") == []


def test_captions_on_an_asset_not_ready_or_going_are_refused(file_api: httpx.Client, clips: Clips) -> None:
    processing = upload(file_api, clips["long"])["media"]
    refused = add(file_api, processing["id"], SRT, status=409)
    assert refused.headers["Retry-After"] and "ready" in problem(refused, 409)["detail"]
    file_api.delete(f"/api/v1/media/{processing['id']}")
    going = file_api.post(
        f"/api/v1/media/{processing['id']}/captions", params={"language": "en"}, content=SRT
    )
    assert going.status_code in (404, 409), going.text  # being deleted, or already gone
    wait_gone(file_api, processing["id"])
    for media_id in (processing["id"], str(uuid.uuid4())):
        problem(add(file_api, media_id, SRT, status=404), 404)


def test_the_same_idempotency_key_adds_one_track(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    media = own_asset(file_api, clips)
    url = f"/api/v1/media/{media['id']}/captions?language=en"
    headers = {"Idempotency-Key": f"captions-{uuid.uuid4().hex[:8]}"}
    first, again = (file_api.post(url, content=SRT, headers=headers) for _ in range(2))
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(get_media(file_api, media["id"])["captions"]) == 1


def test_with_auth_on_track_urls_and_the_masters_subtitle_uris_carry_playback_tokens(
    stack_pool: StackPool, clips: Clips
) -> None:
    stack = stack_pool.get("keyed-file", "file", api_keys=KEY)
    with keyed_client(stack) as api:
        media = own_asset(api, clips)
        track = add(api, media["id"], SRT).json()
        master_url = get_media(api, media["id"])["hls"]["master_url"]
    with httpx.Client(timeout=30) as player:  # no API key, as a <video> or hls.js asks
        assert token_of(track["url"])
        assert fetch(player, track["url"]).text.startswith("WEBVTT")
        [entry] = subtitles_entries(fetch(player, master_url).text)
        playlist_url = urljoin(master_url, entry["URI"])
        assert token_of(playlist_url) == token_of(master_url)
        [segment] = playlist_uris(fetch(player, playlist_url).text)
        assert token_of(segment) and fetch(player, urljoin(playlist_url, segment)).text.startswith("WEBVTT")
        assert player.get(track["url"].split("?")[0]).status_code == 401
        assert player.get(track["url"].split("?")[0] + "?token=1.forged").status_code == 403
