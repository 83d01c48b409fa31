"""Uploads an attacker would try: playlists and scripts pointing into the worker, forged and huge files."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest

from mediajobs import sandbox
from mediajobs.testing.servers import wait_for
from tests.media_api.clips import Clips
from tests.media_api.helpers import JSON, all_media_ids, error_code, problem, upload, wait_job, wait_media
from tests.stacks import MediaStack
from tests.toolkit.hostile import (
    claiming_mkv,
    colour_clip,
    ffconcat,
    gap_clip,
    growing_clip,
    hls_playlist,
    listener,
    trap,
    ts_clip,
)


def refused(stack: MediaStack, api: httpx.Client, path: Path, *, filename: str | None = None) -> JSON:
    """Upload `path`; wait for its processing job to fail; return the job. Nothing derived, no temp files."""
    created = upload(api, path, filename=filename)
    job = wait_job(api, created["job"]["id"], "succeeded", "failed", "cancelled")
    media = wait_media(api, created["media"]["id"], "ready", "failed")
    assert job["state"] == "failed" and media["state"] == "failed", (job, media)
    assert error_code(media) == job["error"]["code"], (job, media)
    assert media["hls"] is None and media["thumbnail_url"] is None, media
    stored = stack.stored.keys(f"media/{media['id']}/")
    assert all("/original/" in key for key in stored), stored
    stack.assert_temp_empty()
    return job


def refused_at_once(stack: MediaStack, api: httpx.Client, path: Path, *, filename: str) -> str:
    """Upload `path`: 415 before anything is stored (no asset, no object, no job); the problem's detail."""
    before = all_media_ids(api), stack.stored.keys("media/")
    with path.open("rb") as body:
        response = api.post("/api/v1/media/uploads", params={"filename": filename}, content=body)
    detail = str(problem(response, 415)["detail"])
    assert (all_media_ids(api), stack.stored.keys("media/")) == before
    return detail


# The worker refuses these too, should one arrive some other way (tests/toolkit/test_hostile_media.py).
@pytest.mark.parametrize("filename", ["evil.m3u8", "holiday.mp4"])
def test_uploaded_hls_playlist_is_refused_at_once_and_the_worker_file_it_lists_is_never_opened(
    file_stack: MediaStack, file_api: httpx.Client, tmp_path: Path, filename: str
) -> None:
    # A file of the worker's machine; a FIFO knows whether anyone opened it, whatever atime says.
    with trap(tmp_path / "worker-secret.ts", ts_clip(tmp_path / "real.ts").read_bytes()) as secret:
        playlist = tmp_path / "playlist.txt"
        playlist.write_text(hls_playlist(str(secret.path)))

        detail = refused_at_once(file_stack, file_api, playlist, filename=filename)

        assert detail.startswith("this is an HLS playlist (a list of links, not the video itself)"), detail
        assert not secret.opened.is_set(), "something read a local file listed in an uploaded playlist"


def test_uploaded_ffconcat_script_is_refused_at_once_and_the_file_it_lists_is_never_opened(
    file_stack: MediaStack, file_api: httpx.Client, tmp_path: Path
) -> None:
    with trap(tmp_path / "worker-secret.ts") as secret:
        script = tmp_path / "script.txt"
        script.write_text(ffconcat(str(secret.path)))

        detail = refused_at_once(file_stack, file_api, script, filename="notes.mp4")

        assert detail.startswith("this is an ffconcat script; upload a video or audio file"), detail
        assert not secret.opened.is_set()


def test_uploaded_playlist_listing_an_internal_url_makes_no_request(
    file_stack: MediaStack, file_api: httpx.Client, tmp_path: Path
) -> None:
    with listener() as internal:
        playlist = tmp_path / "meta.txt"
        playlist.write_text(hls_playlist(internal.url("latest/meta-data/iam/security-credentials/x.ts")))

        refused_at_once(file_stack, file_api, playlist, filename="clip.mp4")

        assert internal.hits() == 0


def test_uploaded_duration_bomb_is_refused_at_probe_with_no_segments_made(
    file_stack: MediaStack, file_api: httpx.Client, tmp_path: Path
) -> None:
    # The file from the report: ~1.4 KB of mkv claiming 100,001 s (it made 24,042 segments).
    bomb = gap_clip(tmp_path / "bomb.mkv", gap_s=100_000)
    assert bomb.stat().st_size < 2000

    job = refused(file_stack, file_api, bomb)

    assert job["error"]["code"] == "unsupported_media", job
    assert "timestamps are broken or forged" in job["error"]["message"], job


def test_upload_longer_than_max_duration_fails_too_large(
    file_stack: MediaStack, file_api: httpx.Client, tmp_path: Path
) -> None:
    long = claiming_mkv(tmp_path / "long.mkv", claimed_s=7 * 3600, real_s=30, size="320x240")

    job = refused(file_stack, file_api, long)

    assert job["error"]["code"] == "too_large", job
    assert "MEDIAJOBS_MAX_DURATION_S" in job["error"]["message"], job


def test_upload_with_more_pixels_than_max_fails_too_large(
    file_stack: MediaStack, file_api: httpx.Client, tmp_path: Path
) -> None:
    huge = colour_clip(tmp_path / "huge.mp4", size="4112x2320")

    job = refused(file_stack, file_api, huge)

    assert job["error"]["code"] == "too_large", job
    assert "4112x2320" in job["error"]["message"] and "MEDIAJOBS_MAX_PIXELS" in job["error"]["message"], job


def test_upload_whose_frames_grow_past_max_pixels_fails_too_large(
    file_stack: MediaStack, file_api: httpx.Client, tmp_path: Path
) -> None:
    # Issue 17 item 2: a TS that probes as 64x64 for 2 s, then holds 7680x4320 frames, became ready (ffmpeg
    # peaked at 3.7 GiB). Every decode now refuses the first frame over MEDIAJOBS_MAX_PIXELS.
    bomb = growing_clip(tmp_path / "bomb.ts", large="7680x4320", frames=10)
    assert bomb.stat().st_size < 400_000

    job = refused(file_stack, file_api, bomb)

    assert job["error"]["code"] == "too_large", job
    message = job["error"]["message"]
    assert "7680x4320" in message and "MEDIAJOBS_MAX_PIXELS" in message, job


def test_a_long_upload_whose_frames_grow_is_not_streamed_and_fails_too_large(
    file_stack: MediaStack, file_api: httpx.Client, tmp_path: Path
) -> None:
    # Long enough to be published from its first 30 s while the rest is cut: every SPS is read before a
    # segment past them is stored, and what was published is withdrawn.
    bomb = growing_clip(tmp_path / "long-bomb.ts", small_s=75, large="7680x4320", frames=10)

    created = upload(file_api, bomb)
    job = wait_job(file_api, created["job"]["id"], "succeeded", "failed", "cancelled", timeout_s=180)
    media = wait_media(file_api, created["media"]["id"], "ready", "failed", timeout_s=60)

    assert job["state"] == "failed" and job["error"]["code"] == "too_large", job
    assert "7680x4320" in job["error"]["message"], job
    assert media["state"] == "failed" and media["hls"] is None and media["playable_at"] is None, media
    wait_for(
        lambda: all("/original/" in key for key in file_stack.stored.keys(f"media/{media['id']}/")),
        timeout_s=30,
        message="what was published to be removed",
    )
    file_stack.assert_temp_empty()


def _net_namespaces_of_ffmpeg_reading(marker: str) -> set[str]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv and os.path.basename(argv[0]) == b"ffmpeg" and any(marker.encode() in a for a in argv):
                found.add(os.readlink(entry / "ns" / "net"))
        except OSError:  # not a process, or it ended while we looked
            continue
    return found


@pytest.mark.skipif(not sandbox.netns_available(), reason="no network namespaces here")
def test_processing_ffmpeg_runs_without_the_hosts_network(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    marker = f"netcheck-{uuid.uuid4().hex[:8]}.mp4"
    created = upload(file_api, clips["long"], filename=marker)
    seen: set[str] = set()

    def transcoding() -> bool:
        seen.update(_net_namespaces_of_ffmpeg_reading(marker))
        return bool(seen)

    wait_for(transcoding, timeout_s=60, interval_s=0.02, message="the HLS ffmpeg to start")
    assert os.readlink("/proc/self/ns/net") not in seen, "ffmpeg shares the host's network namespace"
    assert wait_media(file_api, created["media"]["id"], "ready", "failed")["state"] == "ready"
