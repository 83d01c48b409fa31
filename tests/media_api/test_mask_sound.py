"""A mask's sound through the API: ranges muted and bleeped to the sample with every picture copied, the whole
sound muted or removed, and what cannot be done refused at once saying what to fix. The derived file is
judged by its decoded samples and its frames' own indices (tests/toolkit/soundclips.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mediajobs.toolkit.sound import Range
from tests.media_api.clips import Clips
from tests.media_api.helpers import (
    JSON,
    check_plays,
    fetch,
    get_media,
    problem,
    upload,
    wait_job,
    wait_media,
)
from tests.media_api.stacks import MediaStack
from tests.toolkit.opsclips import cached_clip
from tests.toolkit.smartclips import FPS, gray, indices
from tests.toolkit.soundclips import SECONDS, assert_sound_edited, packets_without_sei, pcm, sound_clip

RANGES = [
    {"start": 0.5, "end": 1.25, "style": "bleep"},
    {"start": 2.00001, "end": 3.0, "style": "mute"},
    {"start": 3.0, "end": 3.5, "style": "bleep"},
]


@pytest.fixture(scope="module")
def sounding(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "sound-source.mp4", sound_clip)


def _source(stack: MediaStack, path: Path) -> JSON:
    if "sounding" not in stack.cache:
        with stack.client() as api:
            created = upload(api, path, filename="ward round.mp4")
            media_id = created["media"]["id"]
            stack.cache["sounding"] = wait_media(api, media_id, "ready", "failed", timeout_s=120)
    media: JSON = stack.cache["sounding"]
    assert media["state"] == "ready", media
    return media


def _mask(api: httpx.Client, media_id: str, body: JSON) -> tuple[JSON, JSON]:
    answer = api.post(f"/api/v1/media/{media_id}/mask", json=body)
    assert answer.status_code == 202, answer.text
    job = wait_job(api, answer.json()["job"]["id"], "succeeded", "failed", timeout_s=120)
    assert job["state"] == "succeeded", job
    derived = wait_media(api, job["media_id"], "ready", "failed", timeout_s=120)
    assert derived["state"] == "ready", derived
    return job, derived


def _original(api: httpx.Client, media: JSON, tmp_path: Path) -> Path:
    url = f"/api/v1/media/{media['id']}/files/original/{media['original']['filename']}"
    path = tmp_path / media["original"]["filename"]
    path.write_bytes(fetch(api, str(api.base_url.join(url))).content)
    return path


def test_bleeped_and_muted_ranges_with_every_picture_copied(
    file_stack: MediaStack, file_api: httpx.Client, sounding: Path, tmp_path: Path
) -> None:
    source = _source(file_stack, sounding)
    job, derived = _mask(file_api, source["id"], {"audio_ranges": RANGES})
    assert (job["result"]["render"], job["result"]["reencoded_s"]) == ("smart", 0.0), job["result"]
    assert derived["title"] == "ward round — muted 0:02–0:03, bleeped 0:00.5–0:01.2, 0:03–0:03.5"
    check_plays(file_api, derived)
    masked = _original(file_api, derived, tmp_path)
    assert indices(gray(masked)) == list(range(SECONDS * FPS))
    assert packets_without_sei(masked) == packets_without_sei(sounding)
    assert_sound_edited(masked, sounding, tuple(Range(**r) for r in RANGES))
    assert get_media(file_api, source["id"])["state"] == "ready"
    file_stack.assert_temp_empty()


def test_the_whole_sound_muted_or_removed(
    file_stack: MediaStack, file_api: httpx.Client, sounding: Path, tmp_path: Path
) -> None:
    source = _source(file_stack, sounding)
    _, muted = _mask(file_api, source["id"], {"audio": "mute"})
    assert muted["title"] == "ward round — muted" and muted["probe"]["audio_codec"] == "aac"
    assert not pcm(_original(file_api, muted, tmp_path)).any()
    region = {"x": 0, "y": 40, "w": 100, "h": 100, "start": 1.0, "end": 2.0, "style": "black"}
    _, removed = _mask(file_api, source["id"], {"regions": [region], "audio": "remove"})
    assert removed["title"] == "ward round — masked 0:01–0:02, without sound"
    assert removed["probe"]["audio_codec"] is None
    check_plays(file_api, removed)
    frames = gray(_original(file_api, removed, tmp_path))
    assert indices(frames) == list(range(SECONDS * FPS))
    assert frames[30][40:140, 0:100].max() <= 16 and frames[60][40:140, 0:100].max() > 16


def test_sound_options_on_media_without_sound_or_pictures_conflict(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    created = upload(file_api, clips.stream_only("video"))
    pictures = wait_media(file_api, created["media"]["id"], "ready", "failed")
    song = wait_media(
        file_api,
        upload(file_api, clips.stream_only("audio"), content_type="audio/mp4")["media"]["id"],
        "ready",
        "failed",
    )
    refused = problem(file_api.post(f"/api/v1/media/{pictures['id']}/mask", json={"audio": "mute"}), 409)
    assert "has no sound; leave audio out" in refused["detail"]
    ranges = {"audio_ranges": [{"start": 1.0, "end": 2.0}]}
    refused = problem(file_api.post(f"/api/v1/media/{pictures['id']}/mask", json=ranges), 409)
    assert "leave audio_ranges out" in refused["detail"]
    region = {"regions": [{"x": 0, "y": 0, "w": 10, "h": 10}]}
    refused = problem(file_api.post(f"/api/v1/media/{song['id']}/mask", json=region), 409)
    assert "no video to mask; leave regions out to edit its sound" in refused["detail"]
    refused = problem(file_api.post(f"/api/v1/media/{song['id']}/mask", json={"audio": "remove"}), 422)
    assert refused["errors"][0]["field"] == "audio" and "would leave nothing" in refused["detail"]
    # A song's sound can be masked too (the result is sound alone).
    bleep = {"audio_ranges": [{"start": 1.0, "end": 2.0, "style": "bleep"}]}
    job, bleeped = _mask(file_api, song["id"], bleep)
    assert job["result"]["render"] == "full" and bleeped["probe"]["width"] is None
