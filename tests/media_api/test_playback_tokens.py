"""Signed playback: with auth on, file URLs carry a token for their asset, so players need no API key."""

from __future__ import annotations

import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mediajobs.config import Settings
from mediajobs.media import playback
from tests.media_api.clips import Clips
from tests.media_api.helpers import JSON, get_media, playlist_uris, ready_asset, upload, wait_media
from tests.stacks import STORAGES, MediaStack, StackPool

KEY = "playback-test-key"
SETTINGS = Settings(api_keys=KEY)
TTL_S = SETTINGS.playback_token_ttl_s


@pytest.fixture(params=STORAGES)
def keyed_stack(request: pytest.FixtureRequest, stack_pool: StackPool) -> MediaStack:
    """A stack of each storage backend with MEDIAJOBS_API_KEYS set."""
    return stack_pool.get(f"keyed-{request.param}", request.param, api_keys=KEY)


@pytest.fixture
def keyed_file_stack(stack_pool: StackPool) -> MediaStack:
    return stack_pool.get("keyed-file", "file", api_keys=KEY)


def keyed_client(stack: MediaStack) -> httpx.Client:
    return httpx.Client(base_url=stack.stack.api_url, timeout=30, headers={"Authorization": f"Bearer {KEY}"})


def keyed_asset(stack: MediaStack, clips: Clips, name: str = "small") -> JSON:
    """A ready asset of `name` on a keyed stack (uploaded once per stack), fetched anew with fresh tokens."""
    with keyed_client(stack) as api:
        key = f"ready-{name}"
        if key not in stack.cache:
            stack.cache[key] = wait_media(api, upload(api, clips[name])["media"]["id"], "ready", "failed")
        assert stack.cache[key]["state"] == "ready", stack.cache[key]
        return get_media(api, stack.cache[key]["id"])


def token_of(url: str) -> str:
    values = parse_qs(urlsplit(url).query).get(playback.QUERY, [])
    assert len(values) == 1, f"{url} carries no single playback token"
    return values[0]


def with_token(url: str, token: str) -> str:
    return f"{url.split('?', 1)[0]}?{playback.QUERY}={token}"


def test_media_json_file_urls_carry_a_token_for_that_asset(
    keyed_file_stack: MediaStack, clips: Clips
) -> None:
    media = keyed_asset(keyed_file_stack, clips)
    urls = [media["hls"]["master_url"], media["thumbnail_url"], *(v["url"] for v in media["hls"]["variants"])]
    for url in urls:
        expires = playback.verify(SETTINGS, media["id"], token_of(url))
        assert time.time() + TTL_S - 60 < expires <= time.time() + TTL_S + 1
    with keyed_client(keyed_file_stack) as api:
        listed = api.get("/api/v1/media", params={"limit": 500}).json()["items"]
    mine = next(m for m in listed if m["id"] == media["id"])
    playback.verify(SETTINGS, media["id"], token_of(mine["hls"]["master_url"]))


def test_media_json_without_auth_has_plain_file_urls(media_stack: MediaStack, clips: Clips) -> None:
    media = ready_asset(media_stack, clips)
    assert "token=" not in media["hls"]["master_url"] + media["thumbnail_url"]


def test_master_url_plays_with_ffmpeg_without_an_api_key(keyed_stack: MediaStack, clips: Clips) -> None:
    media = keyed_asset(keyed_stack, clips)
    master = media["hls"]["master_url"]
    # Every variant and every segment, read over HTTP by a client that knows nothing but the URL.
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", master, "-map", "0", "-c", "copy", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    probe = subprocess.run(["ffprobe", "-v", "error", master], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and not probe.stderr, probe.stderr[-2000:]
    assert httpx.get(media["thumbnail_url"], follow_redirects=True).headers["content-type"] == "image/jpeg"


def test_file_url_without_token_or_key_is_refused(keyed_file_stack: MediaStack, clips: Clips) -> None:
    media = keyed_asset(keyed_file_stack, clips)
    assert httpx.get(media["hls"]["master_url"].split("?", 1)[0]).status_code == 401


@pytest.mark.parametrize("kind", ["foreign", "expired", "tampered", "malformed"])
def test_bad_playback_token_is_refused_with_403(keyed_stack: MediaStack, clips: Clips, kind: str) -> None:
    media = keyed_asset(keyed_stack, clips)
    master = media["hls"]["master_url"]
    good = token_of(master)
    token = {
        "foreign": playback.sign(SETTINGS, keyed_asset(keyed_stack, clips, "medium")["id"]),
        "expired": playback.sign(SETTINGS, media["id"], now=time.time() - TTL_S - 5),
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "malformed": "not-a-token",
    }[kind]
    assert token is not None
    for url in (master, media["thumbnail_url"], media["hls"]["variants"][0]["url"]):
        response = httpx.get(with_token(url, token))
        assert response.status_code == 403, (
            f"{kind} token on {url}: {response.status_code} {response.text[:200]}"
        )


def test_playlists_carry_the_request_token_into_every_segment(keyed_stack: MediaStack, clips: Clips) -> None:
    media = keyed_asset(keyed_stack, clips)
    master_url = media["hls"]["master_url"]
    token = token_of(master_url)
    master = httpx.get(master_url)
    assert master.status_code == 200, master.text
    for uri in playlist_uris(master.text):
        assert token_of(uri) == token
    variant_url = httpx.URL(master_url).join(playlist_uris(master.text)[0])
    variant = httpx.get(variant_url)
    segments = playlist_uris(variant.text)
    assert segments and all(token_of(uri) == token for uri in segments), variant.text
    assert "private" in variant.headers["cache-control"]


def test_playlist_fetched_with_the_api_key_hands_out_fresh_tokens(
    keyed_file_stack: MediaStack, clips: Clips
) -> None:
    media = keyed_asset(keyed_file_stack, clips)
    with keyed_client(keyed_file_stack) as api:
        master = api.get(media["hls"]["master_url"].split("?", 1)[0])
    assert master.status_code == 200, master.text
    for uri in playlist_uris(master.text):
        playback.verify(SETTINGS, media["id"], token_of(uri))


def test_s3_redirect_lives_only_as_long_as_the_token(stack_pool: StackPool, clips: Clips) -> None:
    stack = stack_pool.get("keyed-s3", "s3", api_keys=KEY)
    media = keyed_asset(stack, clips)
    # A token with two minutes left: the bucket URL it is redirected to must not outlive it.
    token = playback.sign(SETTINGS, media["id"], now=time.time() - TTL_S + 120)
    assert token is not None
    response = httpx.get(with_token(media["thumbnail_url"], token))
    assert response.status_code == 307, response.text
    expires_s = int(parse_qs(urlsplit(response.headers["location"]).query)["X-Amz-Expires"][0])
    assert 100 <= expires_s <= 120, response.headers["location"]


def test_s3_redirect_without_auth_lives_for_the_token_ttl(stack_pool: StackPool, clips: Clips) -> None:
    stack = stack_pool.get("main-s3", "s3", import_allow_private="true", hls_swap_grace_s="1")
    media = ready_asset(stack, clips)
    response = httpx.get(media["thumbnail_url"])
    assert response.status_code == 307, response.text
    assert parse_qs(urlsplit(response.headers["location"]).query)["X-Amz-Expires"] == [str(TTL_S)]


def test_token_goes_on_every_relative_child_uri_and_nowhere_else() -> None:
    playlist = (
        "#EXTM3U\r\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio/index.m3u8"\r\n'
        '#EXT-X-KEY:METHOD=AES-128,URI="key.bin?v=2",IV=0x1\n'
        '#EXT-X-MAP:URI="init.mp4"\n'
        '#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://key-server/1"\n'
        "#EXTINF:1.0,\n"
        "seg_0.m4s\n"
        "#EXTINF:1.0,\n"
        "https://cdn.example/seg_1.m4s\n"
        "/api/v1/media/other/files/seg_2.m4s\n"
        '# a comment naming URI="nothing.ts"\n'
        "sub/seg_3.m4s#frag\n"
    )
    out = playback.tokenize_playlist(playlist, "123.abc")
    assert out == (
        "#EXTM3U\r\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio/index.m3u8?token=123.abc"\r\n'
        '#EXT-X-KEY:METHOD=AES-128,URI="key.bin?v=2&token=123.abc",IV=0x1\n'
        '#EXT-X-MAP:URI="init.mp4?token=123.abc"\n'
        '#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://key-server/1"\n'
        "#EXTINF:1.0,\n"
        "seg_0.m4s?token=123.abc\n"
        "#EXTINF:1.0,\n"
        "https://cdn.example/seg_1.m4s\n"
        "/api/v1/media/other/files/seg_2.m4s\n"
        '# a comment naming URI="nothing.ts"\n'
        "sub/seg_3.m4s?token=123.abc#frag\n"
    )
