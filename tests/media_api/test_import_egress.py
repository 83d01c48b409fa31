"""URL imports as an attacker would try them: an "attacker" host on 127.0.0.2 (public for this stack through
MEDIAJOBS_IMPORT_PUBLIC_CIDRS) leads the import toward an "internal" server on 127.0.0.1 holding a secret.

In every case the internal server must see no connection at all, the job fails with a stable code, nothing
is stored and no temp file is left.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from mediajobs import process
from tests.egress.sites import Site, running
from tests.media_api.clips import Clips
from tests.media_api.helpers import JSON, import_url, problem, wait_job
from tests.stacks import MediaStack, StackPool

MiB = 1024 * 1024
SECRET = b"SECRET-CREDENTIALS"


@pytest.fixture(scope="module")
def stack(stack_pool: StackPool) -> MediaStack:
    return stack_pool.get("egress", "file", import_public_cidrs="127.0.0.2/32", import_allowed_ports="*")


@pytest.fixture(scope="module")
def api(stack: MediaStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def attacker() -> Iterator[Site]:
    with running("127.0.0.2") as site:
        yield site


@pytest.fixture(scope="module")
def internal() -> Iterator[Site]:
    with running("127.0.0.1") as site:
        site.add("/latest/meta-data/iam", SECRET, "text/plain")
        site.add("/admin", b"no", "text/plain", status=403)
        yield site


@pytest.fixture(scope="module")
def segments(clips: Clips, tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The small clip as MPEG-TS HLS segments of one second."""
    out = tmp_path_factory.mktemp("hls")
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(clips["small"]), "-c", "copy", "-f", "hls"]
    process.run([*args, "-hls_time", "1", "-hls_playlist_type", "vod", str(out / "index.m3u8")])
    return [p.read_bytes() for p in sorted(out.glob("*.ts"), key=lambda p: int(p.stem.removeprefix("index")))]


def _playlist(site: Site, name: str, segments: list[bytes], last: str, extra: str = "") -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-PLAYLIST-TYPE:VOD"]
    if extra:
        lines.append(extra)
    for i, data in enumerate(segments[:-1]):
        lines += ["#EXTINF:1.0,", site.add(f"/{name}/{i}.ts", data, "video/mp2t")]
    lines += ["#EXTINF:1.0,", last, "#EXT-X-ENDLIST", ""]
    return site.add(f"/{name}/index.m3u8", "\n".join(lines).encode(), "application/vnd.apple.mpegurl")


def _fails_without_reaching_inside(
    stack: MediaStack, api: httpx.Client, internal: Site, url: str, code: str
) -> JSON:
    before = internal.connections
    created = import_url(api, url, pipeline=[])
    job = wait_job(api, created["job"]["id"], "succeeded", "failed", timeout_s=90)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == code, job["error"]
    assert SECRET.decode() not in job["error"]["message"]
    assert internal.connections == before, "the internal server was reached"
    media_id = created["media"]["id"]
    assert stack.stored.keys(f"media/{media_id}/") == []
    stack.assert_temp_empty()
    return job  # type: ignore[no-any-return]


def test_import_from_the_public_host_works_through_the_guard(
    stack: MediaStack, api: httpx.Client, attacker: Site, clips: Clips
) -> None:
    url = attacker.add("/ok/small.mp4", clips["small"].read_bytes(), "video/mp4")
    created = import_url(api, url, pipeline=[])
    job = wait_job(api, created["job"]["id"], "succeeded", "failed", timeout_s=90)
    assert job["state"] == "succeeded", job
    stack.assert_temp_empty()


def test_import_refuses_playlist_segment_on_loopback(
    stack: MediaStack, api: httpx.Client, attacker: Site, internal: Site, segments: list[bytes]
) -> None:
    url = _playlist(attacker, "seg", segments, internal.url("/latest/meta-data/iam"))
    _fails_without_reaching_inside(stack, api, internal, url, "forbidden_address")


@pytest.mark.parametrize(
    "page",
    [
        '<html><body><video src="{inside}"></video></body></html>',
        '<html><head><meta http-equiv="refresh" content="0; url={inside}"></head><body>moved</body></html>',
    ],
    ids=["video-src", "meta-refresh"],
)
def test_import_refuses_links_in_pages_to_loopback(
    stack: MediaStack, api: httpx.Client, attacker: Site, internal: Site, page: str
) -> None:
    inside = internal.url("/latest/meta-data/iam.mp4")
    url = attacker.add(f"/page-{len(attacker.routes)}.html", page.format(inside=inside).encode(), "text/html")
    _fails_without_reaching_inside(stack, api, internal, url, "forbidden_address")


def test_import_refuses_redirect_given_only_to_get(
    stack: MediaStack, api: httpx.Client, attacker: Site, internal: Site
) -> None:
    inside = internal.url("/latest/meta-data/iam")
    url = attacker.add("/get-redirect.mp4", b"", "video/mp4", status=302, headers={"Location": inside},
                       head_status=200, head_headers={})  # fmt: skip
    _fails_without_reaching_inside(stack, api, internal, url, "forbidden_address")


@pytest.mark.parametrize("method", ["AES-128", "SAMPLE-AES"])
def test_import_refuses_hls_key_uri_on_loopback(
    stack: MediaStack, api: httpx.Client, attacker: Site, internal: Site, segments: list[bytes], method: str
) -> None:
    key = f'#EXT-X-KEY:METHOD={method},URI="{internal.url("/latest/meta-data/iam")}"'
    last = attacker.add(f"/{method}/last.ts", segments[-1], "video/mp2t")
    url = _playlist(attacker, method, segments, last, extra=key)
    # yt-dlp gives these streams to ffmpeg (no pycryptodome here; SAMPLE-AES never natively), which imports
    # never use as a downloader; the key request would be refused by the proxy anyway.
    _fails_without_reaching_inside(stack, api, internal, url, "unsupported_media")


def test_import_never_follows_an_ftp_link(
    stack: MediaStack, api: httpx.Client, attacker: Site, internal: Site
) -> None:
    page = f'<html><body><video src="ftp://127.0.0.1:{internal.port}/secret.mp4"></video></body></html>'
    url = attacker.add("/ftp.html", page.encode(), "text/html")
    _fails_without_reaching_inside(stack, api, internal, url, "unsupported_media")


def test_internal_ports_that_refuse_or_answer_403_fail_the_same_way(
    stack: MediaStack, api: httpx.Client, attacker: Site, internal: Site, segments: list[bytes]
) -> None:
    with socket.socket() as sock:  # bound and closed again: nothing listens on its port
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    answers_403 = _playlist(attacker, "scan-403", segments, internal.url("/admin"))
    refuses = _playlist(attacker, "scan-closed", segments, f"http://127.0.0.1:{closed_port}/admin")

    first = _fails_without_reaching_inside(stack, api, internal, answers_403, "forbidden_address")
    second = _fails_without_reaching_inside(stack, api, internal, refuses, "forbidden_address")
    assert first["error"] == second["error"]


def test_a_150_mib_page_is_cut_off_before_it_reaches_yt_dlp(
    stack: MediaStack, api: httpx.Client, attacker: Site, internal: Site
) -> None:
    def page() -> Iterator[bytes]:
        yield b"<!doctype html><html><body>"
        for _ in range(150):
            yield b"<p>" + b"a" * (MiB - 7) + b"</p>"

    url = attacker.add("/huge.html", page, "text/html")
    before = attacker.sent_bytes
    _fails_without_reaching_inside(stack, api, internal, url, "too_large")
    # yt-dlp saw at most the 8 MiB cap; the server wrote little more than that before the proxy hung up.
    assert attacker.sent_bytes - before < 40 * MiB


@pytest.mark.parametrize("host", ["[2002:a9fe:a9fe::]", "[fec0::1]", "192.0.0.192", "192.88.99.1"])
def test_import_of_forbidden_address_forms_is_refused_at_submit(api: httpx.Client, host: str) -> None:
    body = problem(api.post("/api/v1/media/imports", json={"url": f"http://{host}/v.mp4"}), 422)
    assert "may not reach" in str(body), body
