"""Talking to the media API as a client would: upload, import, wait, fetch, check playlists."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from mediajobs.testing.servers import wait_for
from tests.media_api.clips import Clips
from tests.stacks import MediaStack

JSON = dict[str, Any]


def upload(
    api: httpx.Client,
    path: Path,
    *,
    multipart: bool = False,
    filename: str | None = None,
    content_type: str = "video/mp4",
) -> JSON:
    """Upload a file (raw body streamed from disk, or multipart field `file`); returns {"media", "job"}."""
    name = filename or path.name
    with path.open("rb") as f:
        if multipart:
            response = api.post("/api/v1/media/uploads", files={"file": (name, f, content_type)})
        else:
            response = api.post(
                "/api/v1/media/uploads",
                params={"filename": name},
                content=f,
                headers={"Content-Type": content_type},
            )
    assert response.status_code == 202, response.text
    body: JSON = response.json()
    assert set(body) >= {"media", "job"}, body
    return body


def import_url(api: httpx.Client, url: str, **fields: Any) -> JSON:
    response = api.post("/api/v1/media/imports", json={"url": url, **fields})
    assert response.status_code == 202, response.text
    body: JSON = response.json()
    assert set(body) >= {"media", "job"}, body
    return body


def get_media(api: httpx.Client, media_id: str) -> JSON:
    response = api.get(f"/api/v1/media/{media_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_media(api: httpx.Client, media_id: str, *states: str, timeout_s: float = 60) -> JSON:
    def check() -> JSON | None:
        media = get_media(api, media_id)
        return media if media["state"] in states else None

    try:
        return wait_for(
            check,
            timeout_s=timeout_s,
            message=f"media {media_id} to be {'/'.join(states)}",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it is {json.dumps(get_media(api, media_id))}") from None


def wait_gone(api: httpx.Client, media_id: str, timeout_s: float = 30) -> None:
    wait_for(
        lambda: api.get(f"/api/v1/media/{media_id}").status_code == 404,
        timeout_s=timeout_s,
        message=f"media {media_id} to answer 404",
    )


def wait_job(api: httpx.Client, job_id: str, *states: str, timeout_s: float = 60) -> JSON:
    def check() -> JSON | None:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        return job if job["state"] in states else None

    try:
        return wait_for(
            check,
            timeout_s=timeout_s,
            message=f"job {job_id} to be {'/'.join(states)}",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it is {api.get(f'/api/v1/jobs/{job_id}').text}") from None


def outputs_made(media: JSON) -> bool:
    """Whether what a ready asset's pipeline makes after its ladder (downloads, storyboard) is there."""
    downloads_made = all(d["ready"] for d in media.get("downloads") or [])
    return downloads_made and ("storyboard" not in media["pipeline"] or media["storyboard"] is not None)


def wait_settled(api: httpx.Client, media_id: str, timeout_s: float = 120) -> JSON:
    """A ready asset once its outputs are made too: its stored files change no more."""
    media = wait_media(api, media_id, "ready", "failed", timeout_s=timeout_s)
    if media["state"] != "ready":
        return media

    def made() -> JSON | None:
        current = get_media(api, media_id)
        return current if outputs_made(current) else None

    return wait_for(  # type: ignore[no-any-return]
        made,
        timeout_s=timeout_s,
        message=f"the downloads and storyboard of media {media_id}",
    )


def ready_asset(media_stack: MediaStack, clips: Clips, name: str = "small") -> JSON:
    """A ready asset of `name` with its outputs made, uploaded once per stack, for tests that only read it."""
    key = f"ready-{name}"
    if key not in media_stack.cache:
        with media_stack.client() as api:
            created = upload(api, clips[name])
            media_stack.cache[key] = wait_settled(api, created["media"]["id"])
    media: JSON = media_stack.cache[key]
    assert media["state"] == "ready", media
    return media


def fetch(api: httpx.Client, url: str) -> httpx.Response:
    """GET an absolute file URL as a player would: following a redirect to a signed URL."""
    response = api.get(url, follow_redirects=True)
    assert response.status_code == 200, f"GET {url} -> {response.status_code}: {response.text[:300]}"
    return response


def playlist_uris(text: str) -> list[str]:
    """The URIs a playlist references: its non-comment lines and EXT-X-MAP URIs."""
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            uris.append(line)
        elif line.startswith("#EXT-X-MAP:") and 'URI="' in line:
            uris.append(line.split('URI="', 1)[1].split('"', 1)[0])
    return uris


def check_plays(api: httpx.Client, media: JSON, *, video: bool = True) -> None:
    """The master playlist, every variant playlist and a segment of each are fetchable through their URLs."""
    master_url = media["hls"]["master_url"]
    master = fetch(api, master_url)
    assert "mpegurl" in master.headers["content-type"].lower(), master.headers
    text = master.text
    assert text.startswith("#EXTM3U"), text
    stream_infs = [line for line in text.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(stream_infs) == len(media["hls"]["variants"]), text
    for info in stream_infs:
        for attribute in ("BANDWIDTH=", "CODECS=", *(["RESOLUTION="] if video else [])):
            assert attribute in info, f"{attribute} missing in {info!r}"
    listed = [urljoin(master_url, uri) for uri in playlist_uris(text)]
    assert sorted(listed) == sorted(v["url"] for v in media["hls"]["variants"]), (listed, media["hls"])
    for variant_url in listed:
        variant = fetch(api, variant_url)
        assert variant.text.startswith("#EXTM3U") and "#EXTINF:" in variant.text, variant.text[:300]
        segments = playlist_uris(variant.text)
        assert segments, variant.text
        for segment_uri in segments[:2]:
            segment = fetch(api, urljoin(variant_url, segment_uri))
            assert len(segment.content) > 100, f"segment {segment_uri} is {len(segment.content)} bytes"


def raw_get(base_url: str, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written: no client-side normalisation of '..' or percent-escapes."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def problem(response: httpx.Response, status: int) -> JSON:
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: JSON = response.json()
    assert body["status"] == status and body["detail"], body
    return body


def names_field(body: JSON, *names: str) -> bool:
    """Whether a 422 problem names one of `names`: a segment of an error's field, or a word of its message."""
    for error in body.get("errors") or []:
        segments = str(error.get("field", "")).split(".")
        message = str(error.get("message", ""))
        if any(name in segments or re.search(rf"\b{re.escape(name)}\b", message) for name in names):
            return True
    return False


def error_code(thing: JSON) -> str | None:
    error = thing.get("error")
    return error.get("code") if isinstance(error, dict) else error


def all_media_ids(api: httpx.Client) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/v1/media", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids |= {m["id"] for m in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return ids
