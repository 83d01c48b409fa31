"""/files/: what strangers uploaded is served as a download, never as a page; big files never fill memory."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mediajobs.testing.files import MEDIA_MAGIC
from tests.media_api.clips import Clips
from tests.media_api.helpers import JSON, fetch, playlist_uris, ready_asset, upload, wait_media
from tests.stacks import MediaStack

SCRIPT = (
    b"<!doctype html><html><body><script>fetch('/api/v1/media').then(r => r.text())</script></body></html>"
)


def assert_sandboxed(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff", response.headers
    assert response.headers["content-security-policy"] == "sandbox", response.headers
    assert "public" not in response.headers.get("cache-control", ""), response.headers


def assert_download(response: httpx.Response, filename: str) -> None:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "application/octet-stream", response.headers
    assert response.headers["content-disposition"].startswith("attachment;"), response.headers
    assert f'filename="{filename}"' in response.headers["content-disposition"]
    assert_sandboxed(response)


def uploaded_file(api: httpx.Client, path: Path, filename: str, content_type: str) -> tuple[JSON, str]:
    """Upload `path` as `filename`, wait for its (failing or not) processing; the URL of its original."""
    created = upload(api, path, filename=filename, content_type=content_type)
    media = wait_media(api, created["media"]["id"], "ready", "failed")
    return media, f"/api/v1/media/{media['id']}/files/original/{filename}"


@pytest.mark.parametrize(
    ("filename", "content_type", "body"),
    [
        ("page.html", "text/html", SCRIPT),
        ("image.svg", "image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
        (
            "feed.xml",
            "application/xml",
            b"<?xml version='1.0'?><x:script xmlns:x='http://www.w3.org/1999/xhtml'/>",
        ),
        ("data.json", "application/json", b'{"a": 1}'),
        (
            "named.mp4",
            "text/html",
            SCRIPT,
        ),  # a safe name with a hostile sent type: the name wins, nosniff holds
    ],
)
def test_uploaded_non_media_file_is_served_as_a_sandboxed_download(
    api: httpx.Client, tmp_path: Path, filename: str, content_type: str, body: bytes
) -> None:
    # Text is refused at the door (415, test_uploads); a body that starts as media is taken, and what is
    # served of it must still never run in a browser.
    body = MEDIA_MAGIC + body
    path = tmp_path / "body"
    path.write_bytes(body)
    _, url = uploaded_file(api, path, filename, content_type)
    if filename.endswith(".mp4"):
        assert_sandboxed(api.get(url))  # on S3 the redirect to the bucket, which names the type to answer
        assert fetch(api, url).headers["content-type"] == "video/mp4"
        return
    response = api.get(url)  # never redirected: S3 would answer with the type the uploader sent
    assert_download(response, filename)
    assert response.content == body


def test_m3u8_that_is_not_a_playlist_is_served_as_a_download(api: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "fake.m3u8"
    path.write_bytes(MEDIA_MAGIC + SCRIPT)  # taken as media (a real playlist is refused at once)
    _, url = uploaded_file(api, path, "fake.m3u8", "application/vnd.apple.mpegurl")
    response = api.get(url)
    assert_download(response, "fake.m3u8")
    assert response.content == MEDIA_MAGIC + SCRIPT


def test_every_file_of_a_ready_asset_says_nosniff_and_sandbox(
    media_stack: MediaStack, api: httpx.Client, clips: Clips
) -> None:
    media = ready_asset(media_stack, clips)
    master = fetch(api, media["hls"]["master_url"])
    assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl"), master.headers
    assert_sandboxed(master)
    variant_url = httpx.URL(media["hls"]["master_url"]).join(playlist_uris(master.text)[0])
    variant = fetch(api, str(variant_url))
    assert_sandboxed(variant)
    segment_url = variant_url.join(playlist_uris(variant.text)[0])
    segment = api.get(segment_url)
    assert_sandboxed(segment)  # the API's own answer: a segment, or the redirect to it on S3
    assert fetch(api, str(segment_url)).headers["content-type"] == "video/mp2t"
    thumbnail = api.get(media["thumbnail_url"])
    assert_sandboxed(thumbnail)
    assert fetch(api, media["thumbnail_url"]).headers["content-type"] == "image/jpeg"


def test_head_of_a_file_answers_its_headers_without_a_body(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    media = ready_asset(file_stack, clips)
    url = f"/api/v1/media/{media['id']}/files/original/{media['original']['filename']}"
    response = file_api.head(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-length"] == str(clips["small"].stat().st_size)
    assert response.headers["content-type"] == "video/mp4"
    assert response.content == b""
    assert_sandboxed(response)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_huge_m3u8_is_streamed_as_a_download_without_filling_the_api_memory(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    media = ready_asset(file_stack, clips)
    assert file_stack.stored.root is not None and file_stack.stack.api is not None
    # A real playlist's first line, then 150 MB of segment lines: stored straight into the asset's folder.
    path = file_stack.stored.root / "media" / media["id"] / "original" / "huge.m3u8"
    line = b"#EXTINF:1.0,\nseg_000000000000000000000000000000000000000000000000000000000000000000000.ts\n"
    with path.open("wb") as f:
        f.write(b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n")
        block = line * (1024 * 1024 // len(line))
        for _ in range(150):
            f.write(block)
    size = path.stat().st_size
    try:
        pid = file_stack.stack.api.pid
        before = rss_bytes(pid)
        url = f"/api/v1/media/{media['id']}/files/original/huge.m3u8"
        for _ in range(2):
            received = 0
            with file_api.stream("GET", url) as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "application/octet-stream"
                assert response.headers["content-disposition"].startswith("attachment;")
                for chunk in response.iter_bytes():
                    received += len(chunk)
            assert received == size
        grown = rss_bytes(pid) - before
        assert grown < 40 * 1024 * 1024, (
            f"the API grew by {grown / 2**20:.0f} MiB serving a {size / 2**20:.0f} MiB file"
        )
    finally:
        path.unlink()
