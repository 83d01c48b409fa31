"""Media API fixtures: real stacks on a local directory and on a real S3 server, tiny clips, an HTTP source.

Stacks, clips and the HTTP server are shared by the whole directory (starting a stack costs seconds, an
ffmpeg clip a fraction of one); tests isolate themselves by creating their own assets.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mediajobs import process
from mediajobs.testing.files import Served, serve_directory
from tests.media_api.clips import Clips
from tests.media_api.stacks import main_stack
from tests.stacks import STORAGES, MediaStack, StackPool


@pytest.fixture(params=STORAGES)
def media_stack(request: pytest.FixtureRequest, stack_pool: StackPool) -> MediaStack:
    return main_stack(stack_pool, request.param)


@pytest.fixture
def file_stack(stack_pool: StackPool) -> MediaStack:
    """The shared stack on local storage, for behaviour that does not depend on the backend."""
    return main_stack(stack_pool, "file")


@pytest.fixture
def api(media_stack: MediaStack) -> Iterator[httpx.Client]:
    with media_stack.client() as client:
        yield client


@pytest.fixture
def file_api(file_stack: MediaStack) -> Iterator[httpx.Client]:
    with file_stack.client() as client:
        yield client


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory, clips: Clips) -> Iterator[Served]:
    """A real HTTP server on 127.0.0.1 serving small.mp4, medium.mp4, an HLS rendition and an HTML page.

    Special routes: /redirect?to=URL, /status/CODE, /slow/NAME (32 KiB every 50 ms), /chunked/NAME.
    """
    root = tmp_path_factory.mktemp("www")
    for name in ("small", "medium"):
        (root / f"{name}.mp4").write_bytes(clips[name].read_bytes())
    (root / "hls").mkdir()
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(clips["small"]), "-c", "copy", "-f", "hls"]
    process.run([*args, "-hls_time", "1", "-hls_playlist_type", "vod", str(root / "hls" / "index.m3u8")])
    (root / "page.html").write_text("<!doctype html><html><body><h1>Not a video</h1></body></html>\n")
    with serve_directory(root) as server:
        yield server
