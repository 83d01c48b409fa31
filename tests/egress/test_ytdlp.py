from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mediajobs import process
from mediajobs.config import Settings
from mediajobs.egress import egress_guard, ytdlp
from mediajobs.egress.ytdlp import Downloaded, classify
from mediajobs.errors import (
    ForbiddenAddress,
    JobCancelled,
    JobTimeout,
    ProcessFailed,
    SourceTemporarilyUnreachable,
    SourceUnreachable,
    TooLarge,
    UnsupportedMedia,
)
from mediajobs.testing.files import Served
from mediajobs.testing.servers import wait_for
from mediajobs.toolkit.probe import probe
from tests.clips import generate_clip

Progress = tuple[int, int | None, float | None, float | None]


def download(url: str, dest: Path, *, allow_private: bool = False, **options: Any) -> Downloaded:
    """ytdlp.download through an egress guard of its own, as the import job runs it."""
    settings = Settings(import_allow_private=allow_private, temp_dir=dest.parent / "egress")
    with egress_guard(settings) as guard:
        return ytdlp.download(url, dest, guard=guard, **options)


@pytest.fixture
def clip(served: Served) -> Path:
    """A 3 s 640x360 H.264/AAC MP4 served at /clip.mp4."""
    return generate_clip(served.root / "clip.mp4", duration=3.0, width=640, height=360)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "dest"


def test_download_direct_mp4_with_progress(served: Served, clip: Path, dest: Path) -> None:
    updates: list[Progress] = []

    def on_progress(downloaded: int, total: int | None, speed: float | None, eta: float | None) -> None:
        updates.append((downloaded, total, speed, eta))

    got = download(
        served.url("/clip.mp4"), dest, max_bytes=10**8, allow_private=True, on_progress=on_progress
    )

    assert got.path.parent == dest.resolve()
    assert got.path.read_bytes() == clip.read_bytes()
    assert (got.size, got.filename, got.content_type, got.title) == (
        clip.stat().st_size,
        "clip.mp4",
        "video/mp4",
        "clip",
    )
    assert updates, "no progress reported"
    downloaded = [u[0] for u in updates]
    assert downloaded == sorted(downloaded) and downloaded[-1] == got.size
    assert updates[-1][1] == got.size
    assert list(dest.iterdir()) == [got.path]


def test_download_follows_redirect(served: Served, clip: Path, dest: Path) -> None:
    url = served.url("/redirect?to=" + quote(served.url("/clip.mp4"), safe=""))

    got = download(url, dest, max_bytes=10**8, allow_private=True)

    assert got.path.read_bytes() == clip.read_bytes()


def test_download_hls_source_into_playable_file(served: Served, clip: Path, dest: Path) -> None:
    hls = served.root / "hls"
    hls.mkdir()
    args = ["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", "-f", "hls", "-hls_time", "1"]
    process.run([*args, "-hls_playlist_type", "vod", str(hls / "index.m3u8")])

    got = download(served.url("/hls/index.m3u8"), dest, max_bytes=10**8, allow_private=True)

    found = probe(got.path)
    assert found.has_video and found.has_audio
    assert found.duration == pytest.approx(3.0, abs=0.3)
    assert [p.name for p in dest.iterdir()] == [got.path.name]


def test_download_with_missing_hls_segment_fails_instead_of_truncating(
    served: Served, clip: Path, dest: Path
) -> None:
    hls = served.root / "hls"
    hls.mkdir()
    args = ["ffmpeg", "-v", "error", "-i", str(clip), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"]
    args += ["-c:a", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"]
    process.run([*args, str(hls / "index.m3u8")])
    (hls / "index1.ts").unlink()

    with pytest.raises(SourceUnreachable, match="missing"):
        download(served.url("/hls/index.m3u8"), dest, max_bytes=10**8, allow_private=True)
    assert list(dest.iterdir()) == []


def test_download_of_missing_file_is_unreachable(served: Served, dest: Path) -> None:
    with pytest.raises(SourceUnreachable, match="404") as caught:
        download(served.url("/missing.mp4"), dest, max_bytes=10**8, allow_private=True)
    assert caught.value.code == "source_unreachable"


def test_download_from_closed_port_is_unreachable(dest: Path) -> None:
    with pytest.raises(SourceUnreachable, match="connection refused"):
        download("http://127.0.0.1:9/clip.mp4", dest, max_bytes=10**8, allow_private=True)


def test_download_of_html_page_is_unsupported(served: Served, dest: Path) -> None:
    (served.root / "page.html").write_text(
        "<html><head><title>Hi</title></head><body>No video.</body></html>"
    )

    with pytest.raises(UnsupportedMedia) as caught:
        download(served.url("/page.html"), dest, max_bytes=10**8, allow_private=True)
    assert caught.value.code == "unsupported_media"


def test_download_of_text_file_is_unsupported_and_leaves_nothing(served: Served, dest: Path) -> None:
    (served.root / "notes.txt").write_text("just some words\n" * 100)

    with pytest.raises(UnsupportedMedia):
        download(served.url("/notes.txt"), dest, max_bytes=10**8, allow_private=True)
    assert list(dest.iterdir()) == []


def test_download_larger_than_cap_with_known_size(served: Served, clip: Path, dest: Path) -> None:
    with pytest.raises(TooLarge, match=f"{clip.stat().st_size} bytes"):
        download(served.url("/clip.mp4"), dest, max_bytes=clip.stat().st_size // 2, allow_private=True)
    assert list(dest.iterdir()) == []


def test_download_larger_than_cap_without_content_length(served: Served, clip: Path, dest: Path) -> None:
    with pytest.raises(TooLarge):
        download(
            served.url("/chunked/clip.mp4"), dest, max_bytes=clip.stat().st_size // 2, allow_private=True
        )
    assert list(dest.iterdir()) == []


def test_download_cap_stops_a_slow_transfer_early(served: Served, dest: Path) -> None:
    big = generate_clip(served.root / "big.mp4", duration=10.0, width=640, height=360)
    assert big.stat().st_size > 20 * 100_000  # at 32 KiB per 50 ms, a second or more past the cap

    with pytest.raises(TooLarge):
        download(served.url("/slow/big.mp4"), dest, max_bytes=100_000, allow_private=True)

    # The download stopped reading once over the cap: the server was cut off, it never sent the whole file.
    wait_for(lambda: served.transfers.get("/slow/big.mp4"), timeout_s=30, message="the transfer to end")
    assert served.transfers["/slow/big.mp4"] == "cut"
    assert list(dest.iterdir()) == []


def test_download_cap_applies_to_hls(served: Served, clip: Path, dest: Path) -> None:
    # Small segments, each under the cap, that add up to more: yt-dlp's --max-filesize cannot see this.
    hls = served.root / "hls"
    hls.mkdir()
    args = ["ffmpeg", "-v", "error", "-i", str(clip), "-c:v", "libx264", "-preset", "ultrafast", "-g", "10"]
    args += ["-c:a", "copy", "-f", "hls", "-hls_time", "0.4", "-hls_playlist_type", "vod"]
    process.run([*args, str(hls / "index.m3u8")])
    assert len(list(hls.glob("*.ts"))) >= 5

    with pytest.raises(TooLarge):
        download(served.url("/hls/index.m3u8"), dest, max_bytes=clip.stat().st_size // 3, allow_private=True)
    assert list(dest.iterdir()) == []


def test_download_refuses_loopback_unless_allowed(served: Served, clip: Path, dest: Path) -> None:
    with pytest.raises(ForbiddenAddress):
        download(served.url("/clip.mp4"), dest, max_bytes=10**8, allow_private=False)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_cancel_stops_download_and_cleans_up(served: Served, dest: Path) -> None:
    generate_clip(served.root / "big.mp4", duration=10.0, width=640, height=360)
    cancel = threading.Event()
    updates: list[Progress] = []

    def on_progress(downloaded: int, total: int | None, speed: float | None, eta: float | None) -> None:
        updates.append((downloaded, total, speed, eta))
        cancel.set()

    with pytest.raises(JobCancelled), process.cancellable(cancel):
        download(
            served.url("/slow/big.mp4"), dest, max_bytes=10**8, allow_private=True, on_progress=on_progress
        )
    assert updates
    assert list(dest.iterdir()) == []


def test_download_timeout_stops_yt_dlp(served: Served, dest: Path) -> None:
    generate_clip(served.root / "big.mp4", duration=10.0, width=640, height=360)

    with pytest.raises(JobTimeout):
        download(served.url("/slow/big.mp4"), dest, max_bytes=10**8, allow_private=True, timeout_s=1.5)
    assert list(dest.iterdir()) == []


NOT_FOUND = "ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found"
NO_HOST = "ERROR: [generic] x: Failed to resolve 'nope.invalid' ([Errno -2] Name or service not known)"
SKIPPED = "[download] fragment not found; Skipping fragment 1 ...\nERROR: The downloaded file is empty"


@pytest.mark.parametrize(
    ("stderr", "error", "code"),
    [
        (NOT_FOUND, SourceUnreachable, "source_unreachable"),
        (
            "ERROR: unable to download video data: HTTP Error 503",
            SourceTemporarilyUnreachable,
            "source_unreachable",
        ),
        ("ERROR: [generic] x: Unable to download webpage: HTTP Error 403", SourceUnreachable, None),
        (NO_HOST, SourceUnreachable, None),
        ("ERROR: [generic] x: Read timed out. (read timeout=30)", SourceTemporarilyUnreachable, None),
        (
            "WARNING: Falling back\nERROR: Unsupported URL: http://x/page.html",
            UnsupportedMedia,
            "unsupported_media",
        ),
        ("ERROR: [youtube] abc: Video unavailable", SourceUnreachable, None),
        ("ERROR: fragment 2 not found, unable to continue", SourceUnreachable, None),
        (SKIPPED, SourceUnreachable, None),
        ("ERROR: something nobody has seen before", ProcessFailed, "process_failed"),
    ],
)
def test_classify_maps_yt_dlp_errors_to_stable_codes(stderr: str, error: type, code: str | None) -> None:
    result = classify(stderr)

    assert type(result) is error
    if code is not None:
        assert result.code == code
    assert "ERROR:" not in str(result)
