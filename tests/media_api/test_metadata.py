"""Anonymization through the API: from an upload tagged everywhere its container allows (title, comment,
artist, GPS, creation time, chapters, subtitles, timecode and data tracks, Matroska attachments, TS service
names, SEI user data; tests/toolkit/tagged.py), nothing mediajobs stores or serves carries any of it — the
ladder, thumbnail, downloads, storyboard, images, and what mask, remove-frames and clip make and their own
outputs — while the original stays byte for byte as uploaded."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.media_api.helpers import JSON, wait_job
from tests.media_api.outputs import outputs_ready, ready_with_outputs
from tests.stacks import MediaStack
from tests.toolkit.tagged import CONTAINERS, MARKER, leaks, tagged_source

CONTENT_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "mkv": "video/x-matroska", "ts": "video/mp2t"}
OPERATIONS = {
    "mask": {"regions": [{"x": 10, "y": 10, "w": 80, "h": 60, "start": 1.2, "end": 1.6, "style": "black"}]},
    "remove-frames": {"ranges": [{"start": 1.2, "end": 1.6}]},
    "clip": {"start": 0.5, "end": 3.0},
}


def _stored_files(stack: MediaStack, media_id: str) -> dict[str, Path]:
    assert stack.stored.root is not None
    root = stack.stored.root
    return {key: root / key for key in stack.stored.keys(f"media/{media_id}/")}


def _derive(api: httpx.Client, media_id: str, operation: str, body: JSON) -> JSON:
    answer = api.post(f"/api/v1/media/{media_id}/{operation}", json=body)
    assert answer.status_code == 202, answer.text
    job = wait_job(api, answer.json()["job"]["id"], "succeeded", "failed", timeout_s=120)
    assert job["state"] == "succeeded", job
    return outputs_ready(api, job["media_id"], timeout_s=120)


@pytest.mark.parametrize("container", CONTAINERS)
def test_nothing_made_from_a_tagged_upload_carries_its_metadata(
    container: str, file_stack: MediaStack, file_api: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tagged = tagged_source(tmp_path_factory.mktemp("tagged") / f"tagged.{container}", container)
    source = ready_with_outputs(file_stack, tagged, content_type=CONTENT_TYPES[container])
    # Pictures made on request are stored beside the rest.
    for name, params in (("thumbnail.jpg", {"time": 1.0}), ("animated.gif", {"start": 0.0, "end": 1.0})):
        url = f"/api/v1/media/{source['id']}/images/{name}"
        answer = file_api.get(url, params=params, follow_redirects=True)
        assert answer.status_code == 200, answer.text
    # Every operation on one container; the issue's mask on each (the toolkit tests run every writer on all).
    operations = OPERATIONS if container == "mp4" else {"mask": OPERATIONS["mask"]}
    derived = [_derive(file_api, source["id"], operation, body) for operation, body in operations.items()]

    files = _stored_files(file_stack, source["id"])
    [original] = [key for key in files if "/original/" in key]
    assert files.pop(original).read_bytes() == tagged.read_bytes()  # the original stays as uploaded
    assert f"{MARKER!r} in its bytes" in leaks(tagged)
    for media in derived:
        files |= _stored_files(file_stack, media["id"])
    kinds = {Path(key).suffix for key in files}
    assert {".ts", ".m3u8", ".mp4", ".m4a", ".jpg", ".gif", ".vtt"} <= kinds, sorted(files)
    assert sum(1 for key in files if "/original/" in key) == len(operations)
    found = {key: leaks(path) for key, path in files.items()}
    assert {key: what for key, what in found.items() if what} == {}
