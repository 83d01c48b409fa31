"""Clips through the API: a new asset holding exactly the frames of [start, end), and the refusals."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import httpx
import pytest

from mediajobs.toolkit.probe import probe
from tests.media_api.clips import Clips
from tests.media_api.helpers import (
    JSON,
    all_media_ids,
    check_plays,
    fetch,
    get_media,
    names_field,
    problem,
    ready_asset,
    upload,
    wait_gone,
    wait_job,
    wait_media,
)
from tests.stacks import MediaStack
from tests.toolkit.frames import mono_pcm, tone_onsets
from tests.toolkit.opsclips import cached_clip
from tests.toolkit.smartclips import AUDIO_FRAME_S, FPS, gray, indices, marked_clip


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clip(tmp_path_factory, "smart-h264-closed.mp4", lambda p: marked_clip(p))


def marked_asset(stack: MediaStack, api: httpx.Client, path: Path) -> JSON:
    """The frame-numbered 12 s clip as a ready asset, uploaded once per stack."""
    if "marked" not in stack.cache:
        stack.cache["marked"] = wait_media(
            api, upload(api, path)["media"]["id"], "ready", "failed", timeout_s=120
        )
    media: JSON = stack.cache["marked"]
    assert media["state"] == "ready", media
    return media


def clip(api: httpx.Client, media_id: str, body: JSON) -> JSON:
    response = api.post(f"/api/v1/media/{media_id}/clip", json=body)
    assert response.status_code == 202, response.text
    answer: JSON = response.json()
    assert set(answer) >= {"job", "media"} and answer["job"]["media_id"] == answer["media"]["id"], answer
    return answer


def original_of(api: httpx.Client, media: JSON, tmp_path: Path) -> Path:
    """The asset's stored original, fetched through its files URL."""
    name = media["original"]["filename"]
    url = media["hls"]["master_url"].split("/files/", 1)[0] + f"/files/original/{name}"
    path = tmp_path / name
    path.write_bytes(fetch(api, url).content)
    return path


def test_a_clip_is_a_new_asset_with_exactly_the_frames_of_its_range_that_plays(
    media_stack: MediaStack, api: httpx.Client, marked: Path, tmp_path: Path
) -> None:
    source = marked_asset(media_stack, api, marked)
    answer = clip(api, source["id"], {"start": 3.1, "end": 7.3, "crop": None})
    derived = answer["media"]
    assert derived["parent_id"] == source["id"] and derived["state"] in ("pending", "processing"), derived
    assert derived["source"] == {
        "parent_id": source["id"],
        "type": "clip",
        "start": 3.1,
        "end": 7.3,
        "crop": None,
    }

    done = wait_job(api, answer["job"]["id"], "succeeded", "failed", "cancelled", timeout_s=120)
    assert done["state"] == "succeeded", done
    assert done["result"]["render"] == "smart" and done["result"]["copied_s"] >= 2.0, done["result"]
    ready = wait_media(api, derived["id"], "ready", "failed", timeout_s=120)
    assert ready["state"] == "ready" and ready["playable_at"], ready
    check_plays(api, ready)
    # Frames 78 (3.12 s) to 182, in order, and the beep of frame 113 35 frames in.
    kept = original_of(api, ready, tmp_path)
    assert indices(gray(kept)) == list(range(78, 183))
    heard = tone_onsets(mono_pcm(kept))
    assert len(heard) == 1 and abs(heard[0] - 35 / FPS) <= AUDIO_FRAME_S, heard
    assert len(mono_pcm(kept)) / 48_000 == pytest.approx(105 / FPS, abs=AUDIO_FRAME_S)
    assert ready["probe"]["duration"] == pytest.approx(4.2, abs=0.05)
    assert get_media(api, source["id"])["state"] == "ready"


def test_a_cropped_clip_has_the_asked_aspect(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    source = ready_asset(file_stack, clips)  # 640x360
    answer = clip(file_api, source["id"], {"start": 1.0, "end": 3.0, "crop": {"aspect": "9:16", "x": 0.25}})
    done = wait_job(file_api, answer["job"]["id"], "succeeded", "failed", "cancelled", timeout_s=120)
    assert done["state"] == "succeeded", done
    assert done["result"]["render"] == "full" and "9:16" in done["result"]["reason"], done["result"]
    ready = wait_media(file_api, answer["media"]["id"], "ready", "failed", timeout_s=120)
    assert (ready["probe"]["width"], ready["probe"]["height"]) == (202, 360)
    assert ready["probe"]["duration"] == pytest.approx(2.0, abs=0.05)
    check_plays(file_api, ready)


def test_a_clip_of_sound_only_keeps_its_range(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips, tmp_path: Path
) -> None:
    song = wait_media(
        file_api, upload(file_api, clips.stream_only("audio"))["media"]["id"], "ready", "failed"
    )
    answer = clip(file_api, song["id"], {"start": 0.5, "end": 3.0})
    assert wait_job(file_api, answer["job"]["id"], "succeeded", "failed")["state"] == "succeeded"
    ready = wait_media(file_api, answer["media"]["id"], "ready", "failed")
    assert probe(original_of(file_api, ready, tmp_path)).duration == pytest.approx(2.5, abs=0.05)


INVALID = [
    ({"start": 2.0, "end": 2.0}, ("end",)),
    ({"start": 3.0, "end": 1.0}, ("end",)),
    ({"start": -1.0, "end": 1.0}, ("start",)),
    ({"start": 5.0, "end": 6.0}, ("start",)),  # the asset is 4 s long
    ({"start": 1.0, "end": 4.5}, ("end",)),
    ({"start": 1.001, "end": 1.039}, ("end",)),  # between two frames (25 fps): no frame
    ({"start": 1.0, "end": math.nan}, ("end",)),
    ({"start": 1.0, "end": math.inf}, ("end",)),
    ({"start": 1.0}, ("end",)),
    ({"start": "one", "end": 2.0}, ("start",)),
    ({"start": 1.0, "end": 2.0, "crop": {"aspect": "3:4"}}, ("aspect",)),
    ({"start": 1.0, "end": 2.0, "crop": {"aspect": "9:16", "x": 1.5}}, ("x",)),
    ({"start": 1.0, "end": 2.0, "crop": {"aspect": "9:16", "x": -0.1}}, ("x",)),
    ({"start": 1.0, "end": 2.0, "crop": {"x": 0.5}}, ("aspect",)),
    ({"start": 1.0, "end": 2.0, "crop": "9:16"}, ("crop",)),
    ({"start": 1.0, "end": 2.0, "speed": 2}, ("speed",)),
]


@pytest.mark.parametrize(("body", "fields"), INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_a_clip_that_does_not_fit_is_refused_naming_the_field(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips, body: JSON, fields: tuple[str, ...]
) -> None:
    source = ready_asset(file_stack, clips)
    before = all_media_ids(file_api)
    raw = json.dumps(body).encode()  # NaN and Infinity as Python's json writes them
    url = f"/api/v1/media/{source['id']}/clip"
    answer = problem(file_api.post(url, content=raw, headers={"Content-Type": "application/json"}), 422)
    assert names_field(answer, *fields), f"none of {fields} named in {answer}"
    assert all_media_ids(file_api) == before


def test_a_crop_of_sound_only_is_refused(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    key = "ready-song"
    if key not in file_stack.cache:
        created = upload(file_api, clips.stream_only("audio"))
        file_stack.cache[key] = wait_media(file_api, created["media"]["id"], "ready", "failed")
    body = {"start": 0.5, "end": 2.0, "crop": {"aspect": "1:1"}}
    answer = problem(file_api.post(f"/api/v1/media/{file_stack.cache[key]['id']}/clip", json=body), 422)
    assert names_field(answer, "crop") and "sound only" in answer["detail"], answer


def test_a_clip_of_an_asset_not_ready_or_gone_is_refused(file_api: httpx.Client, clips: Clips) -> None:
    processing = upload(file_api, clips["long"])["media"]
    problem(file_api.post(f"/api/v1/media/{processing['id']}/clip", json={"start": 0, "end": 1}), 409)
    file_api.delete(f"/api/v1/media/{processing['id']}")
    wait_gone(file_api, processing["id"])
    for media_id in (processing["id"], str(uuid.uuid4())):
        problem(file_api.post(f"/api/v1/media/{media_id}/clip", json={"start": 0, "end": 1}), 404)


def test_the_same_idempotency_key_makes_one_clip(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    source = ready_asset(file_stack, clips)
    headers = {"Idempotency-Key": f"clip-{uuid.uuid4().hex[:8]}"}
    url = f"/api/v1/media/{source['id']}/clip"
    first = file_api.post(url, json={"start": 0.0, "end": 1.0}, headers=headers)
    again = file_api.post(url, json={"start": 0.0, "end": 1.0}, headers=headers)
    assert first.status_code == again.status_code == 202 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    wait_media(file_api, first.json()["media"]["id"], "ready", "failed")
