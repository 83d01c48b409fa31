"""Operations on ready assets through the API: mask, remove frames, analyze, reprocess, and their refusals."""

from __future__ import annotations

import json
import math
import shutil
import uuid
from typing import Any

import httpx
import pytest

from mediajobs import bootstrap
from mediajobs.config import Settings
from mediajobs.jobs.registry import registry
from mediajobs.testing.files import Served, media_like
from mediajobs.testing.servers import wait_for
from tests.media_api.clips import Clips
from tests.media_api.helpers import (
    JSON,
    all_media_ids,
    check_plays,
    get_media,
    import_url,
    names_field,
    problem,
    ready_asset,
    upload,
    wait_gone,
    wait_job,
    wait_media,
)
from tests.stacks import MediaStack

FRAME_S = 1 / 25


def _operate(api: httpx.Client, media_id: str, operation: str, body: JSON | None = None) -> JSON:
    response = api.post(f"/api/v1/media/{media_id}/{operation}", json=body if body is not None else {})
    assert response.status_code == 202, response.text
    answer: JSON = response.json()
    assert "job" in answer, answer
    return answer["job"]  # type: ignore[no-any-return]


def _derived(api: httpx.Client, source: JSON, operation: str, body: JSON) -> tuple[JSON, JSON]:
    """Run a deriving operation; check the derived asset exists at once; return (job, ready derived asset)."""
    job = _operate(api, source["id"], operation, body)
    derived_id = job["media_id"]
    assert derived_id and derived_id != source["id"], job
    early = get_media(api, derived_id)
    assert early["parent_id"] == source["id"], early
    assert early["state"] in ("pending", "processing"), early

    done = wait_job(api, job["id"], "succeeded", "failed", "cancelled")
    assert done["state"] == "succeeded", done
    assert done["result"]["media_id"] == derived_id, done["result"]
    derived = wait_media(api, derived_id, "ready", "failed")
    assert derived["state"] == "ready", derived
    assert derived["parent_id"] == source["id"]
    assert job["id"] in derived["jobs"], derived["jobs"]
    return done, derived


def _snapshot(stack: MediaStack, api: httpx.Client, media_id: str) -> tuple[Any, ...]:
    media = get_media(api, media_id)
    return (
        media["state"],
        media["original"],
        media["probe"],
        media["hls"],
        media["thumbnail_url"],
        stack.stored.keys(f"media/{media_id}/"),
    )


def test_mask_makes_a_derived_asset_and_leaves_the_source_untouched(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    source = ready_asset(file_stack, clips)
    before = _snapshot(file_stack, file_api, source["id"])
    regions = [
        {"x": 10, "y": 10, "w": 200, "h": 120, "start": 0.0, "end": None, "style": "blur"},
        {"x": 400, "y": 200, "w": 100, "h": 100, "start": 1.0, "end": 3.0, "style": "pixelate"},
        {"x": 500, "y": 0, "w": 140, "h": 60, "start": 0.5, "end": None, "style": "black"},
    ]
    done, derived = _derived(file_api, source, "mask", {"regions": regions})
    # The job runs with what was asked (and the sound kept, as by default).
    assert done["params"] == {"regions": regions, "audio": "keep", "audio_ranges": [], "pipeline": None}
    # Smart rendering says which path ran and how much of the video it re-encoded.
    assert done["result"]["render"] in ("smart", "full")
    assert done["result"]["reencoded_s"] >= 0 and "copied_s" in done["result"]

    probe, parent_probe = derived["probe"], source["probe"]
    assert (probe["width"], probe["height"]) == (parent_probe["width"], parent_probe["height"])
    assert abs(probe["duration"] - parent_probe["duration"]) <= FRAME_S + 0.01, (probe, parent_probe)
    assert probe["audio_codec"] == "aac"
    check_plays(file_api, derived)
    assert _snapshot(file_stack, file_api, source["id"]) == before
    assert file_stack.stored.keys(f"media/{derived['id']}/"), "the derived asset has no files"
    children = file_api.get("/api/v1/media", params={"parent_id": source["id"], "limit": 500}).json()["items"]
    assert derived["id"] in {m["id"] for m in children} or not children
    file_stack.assert_temp_empty()


def test_remove_frames_shortens_the_derived_asset_by_the_removed_time(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    source = ready_asset(file_stack, clips)
    before = _snapshot(file_stack, file_api, source["id"])
    ranges = [{"start": 0.5, "end": 1.0}, {"start": 2.0, "end": 2.5}]
    done, derived = _derived(file_api, source, "remove-frames", {"ranges": ranges})
    assert done["params"] == {"ranges": ranges, "pipeline": None}
    assert done["result"]["render"] in ("smart", "full") and "reencoded_s" in done["result"]

    expected = source["probe"]["duration"] - 1.0
    assert abs(derived["probe"]["duration"] - expected) <= FRAME_S + 0.03, (derived["probe"], expected)
    assert (derived["probe"]["width"], derived["probe"]["height"]) == (640, 360)
    check_plays(file_api, derived)
    assert _snapshot(file_stack, file_api, source["id"]) == before
    file_stack.assert_temp_empty()


def test_analyze_reports_scenes_black_silence_freezes_and_loudness(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    source = ready_asset(file_stack, clips)
    before_ids = all_media_ids(file_api)
    job = _operate(file_api, source["id"], "analyze")
    assert job["media_id"] == source["id"]
    done = wait_job(file_api, job["id"], "succeeded", "failed", "cancelled")
    assert done["state"] == "succeeded", done
    result = done["result"]
    assert set(result) >= {"probe", "scenes", "black", "silence", "freeze", "loudness"}, result.keys()
    assert abs(result["probe"]["duration"] - source["probe"]["duration"]) < 0.05
    assert all(set(s) >= {"time", "score"} for s in result["scenes"]), result["scenes"]
    for name in ("black", "silence", "freeze"):
        assert isinstance(result[name], list)
        assert all(set(s) >= {"start", "end", "duration"} for s in result[name]), result[name]
    # A continuous 440 Hz tone: measurable loudness, no silence.
    loudness = result["loudness"]
    assert set(loudness) >= {"integrated_lufs", "range_lu", "true_peak_dbtp"}, loudness
    assert -40 < loudness["integrated_lufs"] < 0, loudness
    assert result["silence"] == []
    assert all_media_ids(file_api) == before_ids, "analyze must not create an asset"
    assert job["id"] in get_media(file_api, source["id"])["jobs"]


def _version(url: str) -> str:
    return url.split("/files/hls/", 1)[1].split("/", 1)[0]


def test_reprocess_swaps_in_a_new_version_and_removes_the_old_one(
    media_stack: MediaStack, api: httpx.Client, clips: Clips
) -> None:
    media = wait_media(api, upload(api, clips["small"])["media"]["id"], "ready", "failed")
    old_version = _version(media["hls"]["master_url"])
    old_thumbnail = media["thumbnail_url"]

    job = _operate(api, media["id"], "reprocess")
    assert job["media_id"] == media["id"]
    assert wait_job(api, job["id"], "succeeded", "failed", "cancelled")["state"] == "succeeded"
    after = wait_media(api, media["id"], "ready", "failed")
    assert after["state"] == "ready"
    assert after["hls"]["master_url"] != media["hls"]["master_url"]
    assert _version(after["hls"]["master_url"]) != old_version
    assert after["original"] == media["original"]
    check_plays(api, after)

    old_prefix = f"media/{media['id']}/hls/{old_version}/"
    wait_for(
        lambda: media_stack.stored.keys(old_prefix) == [],
        timeout_s=20,
        message=f"the superseded version {old_prefix} to be removed",
    )
    problem(api.get(media["hls"]["master_url"]), 404)
    if after["thumbnail_url"] != old_thumbnail:
        wait_for(
            lambda: api.get(old_thumbnail, follow_redirects=True).status_code == 404,
            timeout_s=10,
            message="the superseded thumbnail to be removed",
        )
    keys = media_stack.stored.keys(f"media/{media['id']}/hls/")
    assert keys and all(
        k.startswith(f"media/{media['id']}/hls/{_version(after['hls']['master_url'])}/") for k in keys
    ), keys
    check_plays(api, after)


REGION = {"x": 0, "y": 0, "w": 100, "h": 100, "start": 0.0, "end": None, "style": "blur"}

INVALID = [
    ("mask", {"regions": []}, ("regions",)),
    ("mask", {}, ("regions",)),
    ("mask", {"regions": [{**REGION, "x": -5}]}, ("x",)),
    ("mask", {"regions": [{**REGION, "w": 0}]}, ("w",)),
    ("mask", {"regions": [{**REGION, "h": -3}]}, ("h",)),
    ("mask", {"regions": [{**REGION, "start": -1.0}]}, ("start",)),
    ("mask", {"regions": [{**REGION, "start": math.nan}]}, ("start",)),
    ("mask", {"regions": [{**REGION, "end": math.inf}]}, ("end",)),  # JSON's 1e999 parses as infinity too
    ("mask", {"regions": [{**REGION, "start": 30.0}]}, ("regions",)),  # after the 4 s video ends
    ("mask", {"regions": [{**REGION, "style": "sparkle"}]}, ("style",)),
    ("mask", {"regions": [{**REGION, "start": 2.0, "end": 1.0}]}, ("end", "start")),
    ("mask", {"regions": [{**REGION, "start": 2.0, "end": 2.0}]}, ("end", "start")),
    ("mask", {"regions": [{**REGION, "x": 700, "y": 10}]}, ("regions",)),  # the frame is 640x360
    ("mask", {"regions": [{**REGION, "x": 10, "y": 400}]}, ("regions",)),
    ("mask", {"regions": [{**REGION, "x": "left"}]}, ("x",)),
    ("mask", {"regions": [REGION], "colour": "red"}, ("colour",)),
    ("mask", {"regions": "everything"}, ("regions",)),
    ("mask", {"audio_ranges": [{"start": 1.0, "end": 9.0}]}, ("end",)),  # after the 4 s video ends
    ("mask", {"audio_ranges": [{"start": 4.5, "end": 5.0}]}, ("start",)),
    ("mask", {"audio_ranges": [{"start": 2.0, "end": 1.0}]}, ("end", "start")),
    ("mask", {"audio_ranges": [{"start": math.nan, "end": 1.0}]}, ("start",)),
    ("mask", {"audio_ranges": [{"start": 0.0, "end": math.inf}]}, ("end",)),
    ("mask", {"audio_ranges": [{"start": 1.0, "end": 2.0, "style": "beep"}]}, ("style",)),
    ("mask", {"audio_ranges": [{"start": 1.0, "end": 2.0}, {"start": 1.5, "end": 3.0}]}, ("audio_ranges",)),
    ("mask", {"audio": "remove", "audio_ranges": [{"start": 1.0, "end": 2.0}]}, ("audio_ranges",)),
    ("mask", {"audio": "louder"}, ("audio",)),
    ("mask", {"regions": [], "audio": "keep", "audio_ranges": []}, ("regions",)),
    ("remove-frames", {"ranges": []}, ("ranges",)),
    ("remove-frames", {}, ("ranges",)),
    ("remove-frames", {"ranges": [{"start": 2.0, "end": 1.0}]}, ("end", "start")),
    ("remove-frames", {"ranges": [{"start": 1.0, "end": 1.0}]}, ("end", "start")),
    ("remove-frames", {"ranges": [{"start": -1.0, "end": 1.0}]}, ("start",)),
    ("remove-frames", {"ranges": [{"start": 0.0, "end": math.inf}]}, ("end",)),
    ("remove-frames", {"ranges": [{"start": math.nan, "end": 1.0}]}, ("start",)),
    ("remove-frames", {"ranges": [{"start": 0.0, "end": 2.0}, {"start": 1.5, "end": 4.5}]}, ("ranges",)),
    ("remove-frames", {"ranges": [{"start": 0.0, "end": 4.0}]}, ("ranges",)),
    ("remove-frames", {"ranges": [{"start": 10.0, "end": 12.0}]}, ("ranges",)),
    ("remove-frames", {"ranges": [{"start": "one", "end": 2.0}]}, ("start",)),
    ("reprocess", {"pipeline": ["sparkle"]}, ("pipeline",)),
]


@pytest.mark.parametrize(
    ("operation", "body", "fields"), INVALID, ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(INVALID)]
)
def test_operation_with_invalid_input_is_refused_naming_the_field(
    file_stack: MediaStack,
    file_api: httpx.Client,
    clips: Clips,
    operation: str,
    body: JSON,
    fields: tuple[str, ...],
) -> None:
    source = ready_asset(file_stack, clips)
    before_ids, before_jobs = all_media_ids(file_api), get_media(file_api, source["id"])["jobs"]
    raw = json.dumps(body).encode()  # NaN and Infinity as Python's json writes (and Starlette reads) them
    url = f"/api/v1/media/{source['id']}/{operation}"
    answer = problem(file_api.post(url, content=raw, headers={"Content-Type": "application/json"}), 422)
    assert names_field(answer, *fields), f"none of {fields} named in {answer}"
    assert all_media_ids(file_api) == before_ids
    assert get_media(file_api, source["id"])["jobs"] == before_jobs


def test_deriving_operations_take_their_jobs_params_model_as_body(file_api: httpx.Client) -> None:
    spec = file_api.get("/openapi.json").json()
    bootstrap.load_kinds(Settings())
    for operation, kind in (
        ("mask", "media.mask"),
        ("remove-frames", "media.remove_frames"),
        ("clip", "media.clip"),
    ):
        body = spec["paths"][f"/api/v1/media/{{media_id}}/{operation}"]["post"]["requestBody"]
        name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        params = registry.get(kind).params
        assert name == params.__name__, (operation, name, params)
        assert set(spec["components"]["schemas"][name]["properties"]) == set(params.model_fields)


OPERATIONS = [
    ("mask", {"regions": [REGION]}),
    ("remove-frames", {"ranges": [{"start": 1.0, "end": 2.0}]}),
    ("analyze", {}),
    ("reprocess", {}),
]


def test_operations_on_an_asset_that_is_not_ready_conflict(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    # Starts as a Matroska file but is not one: taken, then it fails.
    failed = upload(file_api, clips.file("not-video.mkv", media_like(2400)))
    assert wait_media(file_api, failed["media"]["id"], "failed", "ready")["state"] == "failed"
    processing = upload(file_api, clips["long"])  # a 720p transcode takes seconds: still processing below
    before_ids = all_media_ids(file_api)
    for media_id in (failed["media"]["id"], processing["media"]["id"]):
        for operation, body in OPERATIONS:
            problem(file_api.post(f"/api/v1/media/{media_id}/{operation}", json=body), 409)
    assert get_media(file_api, processing["media"]["id"])["state"] == "processing"
    assert all_media_ids(file_api) == before_ids
    file_api.delete(f"/api/v1/media/{processing['media']['id']}")
    wait_gone(file_api, processing["media"]["id"])


def test_operations_on_a_deleted_or_unknown_asset_are_not_found(file_api: httpx.Client, clips: Clips) -> None:
    media = wait_media(file_api, upload(file_api, clips["small"])["media"]["id"], "ready", "failed")
    assert file_api.delete(f"/api/v1/media/{media['id']}").status_code == 202
    wait_gone(file_api, media["id"])
    for media_id in (media["id"], str(uuid.uuid4()), "not-a-uuid"):
        for operation, body in OPERATIONS:
            problem(file_api.post(f"/api/v1/media/{media_id}/{operation}", json=body), 404)


def test_cancelling_a_mask_job_removes_the_derived_asset(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips, source: Served
) -> None:
    shutil.copyfile(clips["big"], source.root / "big.mp4")
    created = import_url(file_api, source.url("big.mp4"), pipeline=["thumbnail"])  # no ladder: ready sooner
    parent = wait_media(file_api, created["media"]["id"], "ready", "failed", timeout_s=90)
    assert parent["state"] == "ready", parent
    before = _snapshot(file_stack, file_api, parent["id"])

    full_frame = {"x": 0, "y": 0, "w": 1920, "h": 1080, "start": 0.0, "end": None, "style": "blur"}
    job = _operate(file_api, parent["id"], "mask", {"regions": [full_frame]})
    derived_id = job["media_id"]
    wait_for(
        lambda: file_api.get(f"/api/v1/jobs/{job['id']}").json()["progress"] > 1,
        timeout_s=30,
        interval_s=0.05,
        message="ffmpeg to start masking",
    )
    running = file_api.get(f"/api/v1/jobs/{job['id']}").json()
    assert running["state"] == "running" and running["progress"] < 90, running

    assert file_api.delete(f"/api/v1/jobs/{job['id']}").status_code == 202
    done = wait_job(file_api, job["id"], "cancelled", "succeeded", "failed", timeout_s=15)
    assert done["state"] == "cancelled", done
    assert done["error"]["code"] == "cancelled"
    wait_gone(file_api, derived_id, timeout_s=15)
    assert file_stack.stored.keys(f"media/{derived_id}/") == []
    file_stack.assert_temp_empty()
    assert _snapshot(file_stack, file_api, parent["id"]) == before


@pytest.mark.parametrize(("operation", "body"), OPERATIONS, ids=[op for op, _ in OPERATIONS])
def test_operation_with_the_same_idempotency_key_creates_the_work_once(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips, operation: str, body: JSON
) -> None:
    # An asset of its own: a repeated reprocess would swap the shared asset's stream under other tests.
    key = f"{operation}-once-{uuid.uuid4().hex[:8]}"
    source = file_stack.cache.get("idempotency-source")
    if source is None:
        source = wait_media(file_api, upload(file_api, clips["small"])["media"]["id"], "ready", "failed")
        file_stack.cache["idempotency-source"] = source
    before_ids = all_media_ids(file_api)
    url = f"/api/v1/media/{source['id']}/{operation}"
    first = file_api.post(url, json=body, headers={"Idempotency-Key": key})
    second = file_api.post(url, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    jobs = [first.json()["job"], second.json()["job"]]
    try:
        assert jobs[0]["id"] == jobs[1]["id"], "the repeated POST created a second job"
        assert len(all_media_ids(file_api) - before_ids) == (
            1 if operation in ("mask", "remove-frames") else 0
        )
    finally:
        for job in jobs:
            wait_job(file_api, job["id"], "succeeded", "failed", "cancelled")
        wait_media(file_api, source["id"], "ready", "failed")
