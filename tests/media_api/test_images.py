"""Storyboards and images at any time: each tile, still and animation frame is the frame a player shows at
its time (judged by the frame index each frame carries), sized as asked, rendered once and then served."""

from __future__ import annotations

import re
import struct
import uuid
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from mediajobs.testing.files import Served
from tests.media_api.helpers import (
    JSON,
    fetch,
    get_media,
    import_url,
    names_field,
    problem,
    wait_gone,
)
from tests.media_api.outputs import ready_with_outputs
from tests.stacks import MediaStack, StackPool
from tests.toolkit.indexclips import FPS, counter_clip, frame_shown_at, gray, index_of

SECONDS = 12.0
LAST = int(SECONDS * FPS) - 1


@pytest.fixture(scope="session")
def counters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """12 s counter clips: `standard` (its stream is the top rendition) and `encoded` (every rung encoded)."""
    directory = tmp_path_factory.mktemp("counters")
    return {
        "standard": counter_clip(directory / "counter.mp4", seconds=SECONDS),
        "encoded": counter_clip(directory / "counter444.mp4", seconds=SECONDS, standard=False),
    }


def image(api: httpx.Client, media: JSON, name: str, **params: object) -> httpx.Response:
    return api.get(f"/api/v1/media/{media['id']}/images/{name}", params=params, follow_redirects=True)


def cues(vtt: str) -> list[tuple[float, float, str]]:
    """(start, end, payload) of each cue of a WebVTT file."""
    clock = r"(\d+):(\d\d):(\d\d)\.(\d\d\d)"
    found = []
    blocks = vtt.replace("\r\n", "\n").split("\n\n")
    for block in blocks:
        lines = block.strip().splitlines()
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        a, b = (re.search(clock, part) for part in lines[timing].split("-->"))
        assert a and b, lines[timing]
        seconds = lambda m: int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) + int(m[4]) / 1000  # noqa: E731
        found.append((seconds(a), seconds(b), "\n".join(lines[timing + 1 :])))
    return found


@pytest.mark.parametrize("kind", ["standard", "encoded"])
def test_storyboard_tile_of_each_cue_shows_the_frame_at_its_start(
    file_stack: MediaStack, file_api: httpx.Client, counters: dict[str, Path], kind: str
) -> None:
    media = ready_with_outputs(file_stack, counters[kind])
    board = media["storyboard"]
    assert board["interval_s"] == 1.0 and board["count"] == 12  # one a second for a short video
    assert (board["tile_width"], board["tile_height"]) == (160, 120)  # 160 wide, the aspect kept
    answer = fetch(file_api, board["vtt_url"])
    assert answer.headers["content-type"].startswith("text/vtt"), answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "sandbox"
    assert answer.text.startswith("WEBVTT")
    found = cues(answer.text)
    assert [(start, end) for start, end, _ in found] == [(k, k + 1.0) for k in range(12)]
    sheets: dict[str, object] = {}
    for k, (start, _, payload) in enumerate(found):
        match = re.fullmatch(r"(\S+?)#xywh=(\d+),(\d+),(\d+),(\d+)", payload)
        assert match, payload
        url = urljoin(board["vtt_url"], match[1])  # relative to the VTT, as players resolve it
        assert url in board["images"], (url, board["images"])
        if url not in sheets:
            sheets[url] = gray(fetch(file_api, url).content, ".jpg")
        x, y, w, h = (int(v) for v in match.groups()[1:])
        assert (w, h) == (160, 120)
        tile = sheets[url][y : y + h, x : x + w]  # type: ignore[index]
        assert index_of(tile) == frame_shown_at(start), f"cue {k} at {start} s"


@pytest.mark.parametrize("kind", ["standard", "encoded"])
def test_thumbnail_at_a_time_is_the_frame_shown_at_that_time(
    file_stack: MediaStack, file_api: httpx.Client, counters: dict[str, Path], kind: str
) -> None:
    media = ready_with_outputs(file_stack, counters[kind], storyboard=False)
    # Frame starts, just before and after them, segment boundaries (segments start at 0, 4 and 8 s), the end.
    for t in (0.0, 0.039, 0.04, 1.0, 3.999, 4.0, 7.52, 8.0, 11.96, 12.0):
        answer = image(file_api, media, "thumbnail.png", time=t)
        assert answer.status_code == 200, answer.text
        assert index_of(gray(answer.content)) == min(LAST, frame_shown_at(t)), f"at {t} s"


def test_thumbnail_sizes_fit_modes_and_formats(
    file_stack: MediaStack, file_api: httpx.Client, counters: dict[str, Path]
) -> None:
    media = ready_with_outputs(file_stack, counters["standard"], storyboard=False)
    sizes = {
        (("width", 160),): (160, 120),
        (("height", 60),): (80, 60),
        (("width", 200), ("height", 200)): (200, 150),  # preserve: fits inside
        (("width", 100), ("height", 100), ("fit_mode", "crop")): (100, 100),
        (("width", 200), ("height", 100), ("fit_mode", "pad")): (200, 100),
        (): (320, 240),  # the source's own size
    }
    for params, (w, h) in sizes.items():
        answer = image(file_api, media, "thumbnail.png", time=2.0, **dict(params))
        assert answer.status_code == 200, answer.text
        picture = gray(answer.content)
        assert picture.shape == (h, w), (params, picture.shape)
        if ("fit_mode", "pad") in params:
            # 133 px of picture in the middle, black bars beside it.
            assert picture[:, :30].max() < 20 and picture[:, -30:].max() < 20
    magic = {
        "jpg": (b"\xff\xd8\xff", "image/jpeg"),
        "png": (b"\x89PNG", "image/png"),
        "webp": (b"RIFF", "image/webp"),
    }
    for fmt, (head, content_type) in magic.items():
        answer = image(file_api, media, f"thumbnail.{fmt}", time=2.0, width=160)
        assert answer.status_code == 200 and answer.headers["content-type"] == content_type
        assert answer.content.startswith(head)
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert index_of(gray(answer.content, f".{fmt}")) == 50


def test_an_image_is_rendered_once_then_served_from_storage(
    file_stack: MediaStack, file_api: httpx.Client, counters: dict[str, Path]
) -> None:
    media = ready_with_outputs(file_stack, counters["standard"], storyboard=False)
    jobs_before = len(get_media(file_api, media["id"])["jobs"])
    first = image(file_api, media, "thumbnail.jpg", time=5.0, width=96)
    assert first.status_code == 200, first.text
    assert len(get_media(file_api, media["id"])["jobs"]) == jobs_before + 1
    # The same parameters (5.0004 s is the same millisecond) never render again.
    for t in (5.0, 5.0004):
        again = image(file_api, media, "thumbnail.jpg", time=t, width=96)
        assert again.status_code == 200 and again.content == first.content
    assert len(get_media(file_api, media["id"])["jobs"]) == jobs_before + 1
    version = media["hls"]["master_url"].split("/hls/", 1)[1].split("/", 1)[0]
    assert file_stack.stored.keys(f"media/{media['id']}/images/{version}/thumbnail/")


def animation_frames(data: bytes, fmt: str) -> int:
    """How many frames an animated GIF or WebP holds (counted from its blocks, not decoded)."""
    if fmt == "webp":
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP" and b"ANIM" in data
        count, at = 0, 12
        while at + 8 <= len(data):
            chunk, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
            count += chunk == b"ANMF"
            at += 8 + size + (size & 1)
        return count
    assert data[:6] in (b"GIF87a", b"GIF89a")
    return data.count(b"\x21\xf9\x04")  # one graphic control extension before each frame


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_animated_preview_holds_the_frames_of_its_range(
    file_stack: MediaStack, file_api: httpx.Client, counters: dict[str, Path], fmt: str, tmp_path: Path
) -> None:
    media = ready_with_outputs(file_stack, counters["standard"], storyboard=False)
    # 3 s to 5 s crosses a segment boundary (4 s).
    answer = image(file_api, media, f"animated.{fmt}", start=3.0, end=5.0, fps=5, width=160)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == f"image/{fmt}"
    assert animation_frames(answer.content, fmt) == 10
    if fmt == "gif":  # ffmpeg reads animated GIF (not animated WebP): each frame is the one shown at its time
        from tests.toolkit.frames import gray_frames

        path = tmp_path / "a.gif"
        path.write_bytes(answer.content)
        frames = gray_frames(path, 160, 120)
        assert [index_of(f) for f in frames] == [frame_shown_at(3.0 + i / 5) for i in range(10)]


def test_poster_chosen_at_a_time_becomes_the_thumbnail(
    file_stack: MediaStack, file_api: httpx.Client, counters: dict[str, Path]
) -> None:
    media = ready_with_outputs(file_stack, counters["encoded"], storyboard=False)
    # Before: the default image is the frame the automatic thumbnail shows.
    auto = index_of(gray(fetch(file_api, media["thumbnail_url"]).content, ".jpg"))
    assert index_of(gray(image(file_api, media, "thumbnail.png").content)) == auto
    answer = file_api.put(f"/api/v1/media/{media['id']}/poster", json={"time": 2.0})
    assert answer.status_code == 200, answer.text
    after = answer.json()
    assert after["thumbnail_url"] != media["thumbnail_url"]
    assert index_of(gray(fetch(file_api, after["thumbnail_url"]).content, ".jpg")) == 50
    assert index_of(gray(image(file_api, media, "thumbnail.png").content)) == 50
    assert get_media(file_api, media["id"])["thumbnail_url"] == after["thumbnail_url"]


BAD_IMAGE_REQUESTS = [
    ("thumbnail.bmp", {"time": 1}, "format"),
    ("thumbnail.jpg", {"time": -1}, "time"),
    ("thumbnail.jpg", {"time": 12.5}, "time"),
    ("thumbnail.jpg", {"time": "nan"}, "time"),
    ("thumbnail.jpg", {"time": "inf"}, "time"),
    ("thumbnail.jpg", {"time": "soon"}, "time"),
    ("thumbnail.jpg", {"width": 0}, "width"),
    ("thumbnail.jpg", {"width": 99999}, "width"),
    ("thumbnail.jpg", {"height": -5}, "height"),
    ("thumbnail.jpg", {"height": 1921}, "height"),
    ("thumbnail.jpg", {"fit_mode": "evil"}, "fit_mode"),
    ("animated.png", {}, "format"),
    ("animated.gif", {"fps": 1000}, "fps"),
    ("animated.gif", {"fps": 0}, "fps"),
    ("animated.gif", {"start": 5, "end": 3}, "end"),
    ("animated.gif", {"start": 0, "end": 11}, "end"),
    ("animated.gif", {"start": 8, "end": 12.5}, "end"),
    ("animated.gif", {"start": 12}, "start"),
    ("animated.gif", {"start": -1}, "start"),
    ("animated.webp", {"width": 641}, "width"),
    ("animated.webp", {"width": 0}, "width"),
]


@pytest.mark.parametrize(("name", "params", "field"), BAD_IMAGE_REQUESTS)
def test_bad_image_request_is_422_naming_the_parameter(
    file_stack: MediaStack,
    file_api: httpx.Client,
    counters: dict[str, Path],
    name: str,
    params: dict[str, object],
    field: str,
) -> None:
    media = ready_with_outputs(file_stack, counters["standard"], storyboard=False)
    body = problem(file_api.get(f"/api/v1/media/{media['id']}/images/{name}", params=params), 422)
    assert names_field(body, field), body


@pytest.mark.parametrize(
    ("body", "field"),
    [({"time": -1}, "time"), ({"time": 99}, "time"), ({"time": "x"}, "time"), ({}, "time"), ({"t": 1}, "t")],
)
def test_bad_poster_is_422_naming_the_field(
    file_stack: MediaStack, file_api: httpx.Client, counters: dict[str, Path], body: JSON, field: str
) -> None:
    media = ready_with_outputs(file_stack, counters["standard"], storyboard=False)
    answer = problem(file_api.put(f"/api/v1/media/{media['id']}/poster", json=body), 422)
    assert names_field(answer, field), answer


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "mp4", "height": 99999}, "height"),
        ({"type": "mp4", "height": -1}, "height"),
        ({"type": "webm"}, "type"),
        ({"type": "audio", "height": 240}, "height"),
        ({"type": "original"}, "type"),
    ],
)
def test_bad_download_request_is_422_naming_the_field(
    file_stack: MediaStack, file_api: httpx.Client, counters: dict[str, Path], body: JSON, field: str
) -> None:
    media = ready_with_outputs(file_stack, counters["standard"], storyboard=False)
    answer = problem(file_api.post(f"/api/v1/media/{media['id']}/downloads", json=body), 422)
    assert names_field(answer, field), answer


def test_unknown_asset_images_are_404(file_api: httpx.Client) -> None:
    missing = uuid.uuid4()
    problem(file_api.get(f"/api/v1/media/{missing}/images/thumbnail.jpg"), 404)
    problem(file_api.get(f"/api/v1/media/{missing}/images/animated.gif"), 404)
    problem(file_api.put(f"/api/v1/media/{missing}/poster", json={"time": 1}), 404)
    problem(file_api.post(f"/api/v1/media/{missing}/downloads", json={"type": "mp4"}), 404)


def test_an_asset_not_ready_yet_answers_409_with_retry_after(file_api: httpx.Client, source: Served) -> None:
    """An import still downloading (served slowly) has nothing to take images of yet: ask again later."""
    created = import_url(file_api, source.url("slow/medium.mp4"))
    media_id = created["media"]["id"]
    try:
        for answer in (
            file_api.get(f"/api/v1/media/{media_id}/images/thumbnail.jpg", params={"time": 1}),
            file_api.get(f"/api/v1/media/{media_id}/images/animated.gif"),
            file_api.put(f"/api/v1/media/{media_id}/poster", json={"time": 1}),
        ):
            body = problem(answer, 409)
            assert int(answer.headers["retry-after"]) > 0, answer.headers
            assert "ready" in body["detail"], body
        problem(file_api.post(f"/api/v1/media/{media_id}/downloads", json={"type": "mp4"}), 409)
        assert get_media(file_api, media_id)["state"] in ("pending", "importing")
    finally:
        file_api.delete(f"/api/v1/media/{media_id}")
        wait_gone(file_api, media_id)


def test_renders_past_the_cap_are_429_and_rendered_ones_still_served(
    stack_pool: StackPool, counters: dict[str, Path]
) -> None:
    capped = stack_pool.get("capped-renders", "file", max_image_renders="2")
    media = ready_with_outputs(capped, counters["standard"], storyboard=False)
    with capped.client() as api:
        first = image(api, media, "thumbnail.jpg", time=1.0)
        assert first.status_code == 200, first.text
        assert image(api, media, "animated.gif", start=1, end=2, fps=2).status_code == 200
        refused = problem(image(api, media, "thumbnail.jpg", time=2.0), 429)
        assert "MEDIAJOBS_MAX_IMAGE_RENDERS" in refused["detail"]
        problem(api.put(f"/api/v1/media/{media['id']}/poster", json={"time": 2.0}), 429)
        again = image(api, media, "thumbnail.jpg", time=1.0)
        assert again.status_code == 200 and again.content == first.content
