"""Downloads: the original, an MP4 of the top rung and an M4A of the sound, remuxed from the ladder (never
encoded again), played inline or saved under a readable name, on local and S3 storage."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import numpy as np
import pytest

from mediajobs import process
from tests.media_api.clips import Clips
from tests.media_api.helpers import JSON, fetch, get_media, problem, wait_job
from tests.media_api.outputs import by_type, outputs_ready, ready_with_outputs
from tests.stacks import MediaStack
from tests.toolkit.frames import mono_pcm


def ffprobe(path: Path, *entries: str) -> JSON:
    args = ["ffprobe", "-v", "error", "-of", "json", "-show_entries", ",".join(entries), str(path)]
    return json.loads(process.run(args, capture_stdout=True).stdout or "{}")  # type: ignore[no-any-return]


def packets_digest(path: Path, stream: str) -> str:
    """A digest of one stream's packets (payloads in order): equal only for an exact copy of the stream."""
    args = ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=data_hash"]
    done = process.run([*args, "-show_data_hash", "md5", "-of", "csv=p=0", str(path)], capture_stdout=True)
    return hashlib.sha256((done.stdout or "").encode()).hexdigest()


def picture_hashes(path: Path) -> list[str]:
    """The MD5 of every decoded picture, in order: a lossy encode could not reproduce them bit for bit."""
    args = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"]
    lines = (process.run(args, capture_stdout=True).stdout or "").splitlines()
    return [line.rsplit(",", 1)[1].strip() for line in lines if line and not line.startswith("#")]


def saved(api: httpx.Client, url: str, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    out.write_bytes(fetch(api, url).content)
    return out


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def test_a_ready_asset_offers_its_original_an_mp4_and_an_m4a(
    media_stack: MediaStack, api: httpx.Client, clips: Clips, tmp_path: Path
) -> None:
    media = ready_with_outputs(media_stack, clips["small"], filename="holiday.mp4")
    assert [d["type"] for d in media["downloads"]] == ["original", "mp4", "audio"], media["downloads"]
    [original], [mp4], [audio] = by_type(media, "original"), by_type(media, "mp4"), by_type(media, "audio")
    assert original["size"] == clips["small"].stat().st_size and original["height"] == 360
    assert fetch(api, original["url"]).content == clips["small"].read_bytes()
    assert mp4["height"] == 360 and mp4["content_type"] == "video/mp4"
    assert audio["height"] is None and audio["content_type"] == "audio/mp4"

    video_file = saved(api, mp4["url"], tmp_path, "a.mp4")
    assert video_file.stat().st_size == mp4["size"]
    found = ffprobe(video_file, "stream=codec_name,codec_type", "format=format_name")
    assert sorted(s["codec_name"] for s in found["streams"]) == ["aac", "h264"], found
    # +faststart: the index comes before the media data, so a browser plays it while it downloads.
    head = video_file.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head, head[:64]
    sound_file = saved(api, audio["url"], tmp_path, "a.m4a")
    assert sound_file.stat().st_size == audio["size"]
    found = ffprobe(sound_file, "stream=codec_name,codec_type")
    assert [s["codec_name"] for s in found["streams"]] == ["aac"], found


def test_downloads_are_the_ladders_streams_copied_not_encoded_again(
    media_stack: MediaStack, api: httpx.Client, clips: Clips, tmp_path: Path
) -> None:
    """A standard source's top rung is its own stream: the MP4 decodes to exactly its pictures (the H.264 is
    carried over, parameter sets in band as HLS has them) and holds exactly its sound's packets."""
    source = clips["small"]
    media = ready_with_outputs(media_stack, source, filename="holiday.mp4")
    [mp4], [audio] = by_type(media, "mp4"), by_type(media, "audio")
    video_file = saved(api, mp4["url"], tmp_path, "a.mp4")
    sound_file = saved(api, audio["url"], tmp_path, "a.m4a")
    expected_pictures = picture_hashes(source)
    assert len(expected_pictures) == 100  # 4 s at 25 fps
    assert picture_hashes(video_file) == expected_pictures
    assert packets_digest(video_file, "a:0") == packets_digest(source, "a:0")
    assert packets_digest(sound_file, "a:0") == packets_digest(source, "a:0")
    # In sync: the sound decodes to the very samples of the source's, from the same instant (the AAC
    # priming stays hidden behind the edit list, as in the source), in the MP4 and in the M4A.
    expected = mono_pcm(source)
    for decoded in (mono_pcm(video_file), mono_pcm(sound_file)):
        assert decoded.shape == expected.shape
        assert np.array_equal(decoded, expected)


@pytest.mark.parametrize(
    ("filename", "saved_as"),
    [
        ("holiday.mp4", ('filename="holiday-360p.mp4"', 'filename="holiday.m4a"', 'filename="holiday.mp4"')),
        (
            "Strand \u2013 Sommer.mp4",
            (
                "filename*=UTF-8''Strand%20%E2%80%93%20Sommer-360p.mp4",
                "filename*=UTF-8''Strand%20%E2%80%93%20Sommer.m4a",
                "filename*=UTF-8''Strand%20%E2%80%93%20Sommer.mp4",
            ),
        ),
    ],
)
def test_download_urls_play_inline_and_save_under_a_readable_name(
    media_stack: MediaStack, api: httpx.Client, clips: Clips, filename: str, saved_as: tuple[str, str, str]
) -> None:
    media = ready_with_outputs(media_stack, clips["small"], filename=filename)
    [mp4], [audio], [original] = by_type(media, "mp4"), by_type(media, "audio"), by_type(media, "original")
    inline = fetch(api, mp4["url"])
    assert inline.headers["content-type"] == "video/mp4"
    assert "attachment" not in inline.headers.get("content-disposition", "")
    for entry, name in zip((mp4, audio, original), saved_as, strict=True):
        answer = fetch(api, with_query(entry["url"], "download=1"))
        disposition = answer.headers["content-disposition"]
        assert disposition.startswith("attachment;") and name in disposition, disposition
        assert len(answer.content) == entry["size"]


def test_mp4_of_another_rung_on_request(media_stack: MediaStack, api: httpx.Client, clips: Clips) -> None:
    media = ready_with_outputs(media_stack, clips["long"], storyboard=False)  # 720p: 720, 480 and 360 rungs
    assert [d["height"] for d in by_type(media, "mp4")] == [720]
    problem(api.post(f"/api/v1/media/{media['id']}/downloads", json={"type": "mp4", "height": 1080}), 422)
    answer = api.post(f"/api/v1/media/{media['id']}/downloads", json={"type": "mp4", "height": 480})
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == f"/api/v1/jobs/{answer.json()['job']['id']}"
    listed = get_media(api, media["id"])
    assert {d["height"]: d["ready"] for d in by_type(listed, "mp4")}[480] in (False, True)
    wait_job(api, answer.json()["job"]["id"], "succeeded", timeout_s=90)
    done = outputs_ready(api, media["id"], storyboard=False)
    assert [d["height"] for d in by_type(done, "mp4")] == [720, 480]
    [rung] = [d for d in by_type(done, "mp4") if d["height"] == 480]
    assert rung["ready"] and rung["size"] > 0


def test_audio_only_and_silent_assets_offer_what_they_have(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    song = ready_with_outputs(
        file_stack, clips.stream_only("audio"), storyboard=False, content_type="audio/mp4"
    )
    assert [d["type"] for d in song["downloads"]] == ["original", "audio"]
    assert song["storyboard"] is None
    silent = ready_with_outputs(file_stack, clips.stream_only("video"))
    assert [d["type"] for d in silent["downloads"]] == ["original", "mp4"]
    refused = file_api.post(f"/api/v1/media/{silent['id']}/downloads", json={"type": "audio"})
    assert problem(refused, 409)["detail"].endswith("has no audio")
    refused = file_api.post(f"/api/v1/media/{song['id']}/downloads", json={"type": "mp4"})
    problem(refused, 409)
    # Sound has no pictures to take: no images, no poster (409 without Retry-After: it will not change).
    for answer in (
        file_api.get(f"/api/v1/media/{song['id']}/images/thumbnail.jpg"),
        file_api.put(f"/api/v1/media/{song['id']}/poster", json={"time": 1.0}),
    ):
        assert "no video" in problem(answer, 409)["detail"]
        assert "retry-after" not in answer.headers


@contextmanager
def watching(directory: Path) -> Iterator[set[tuple[str, int]]]:
    """(name, inode) of every file that appears under `directory` while the block runs (looked at every
    few milliseconds: a copy of a stored file stays there for as long as ffmpeg reads it)."""
    seen: set[tuple[str, int]] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for top, _, names in os.walk(directory):
                for name in names:
                    with suppress(OSError):
                        seen.add((name, os.lstat(os.path.join(top, name)).st_ino))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()


def test_on_local_storage_jobs_read_stored_files_in_place_and_copy_nothing_into_their_temp_dir(
    file_stack: MediaStack, file_api: httpx.Client, clips: Clips
) -> None:
    """While the asset is processed, and later while an MP4 is remuxed from its ladder, no file in the
    workers' temp dir is the stored original or a stored segment, by name (a copy) or by inode (a link); the
    stored original is the uploaded file byte for byte and stays the storage's own (one link, the worker's
    user: a jailed child owning it could rewrite it)."""
    root = file_stack.stored.root
    assert root is not None
    with watching(file_stack.temp_dir) as while_processing:
        media = ready_with_outputs(file_stack, clips["small"], filename="in-place.mp4")
    [original] = by_type(media, "original")
    stored_original = root / f"media/{media['id']}/original/in-place.mp4"
    st = stored_original.stat()
    assert (
        hashlib.sha256(stored_original.read_bytes()).digest()
        == hashlib.sha256(clips["small"].read_bytes()).digest()
    )
    assert (st.st_size, st.st_nlink, st.st_uid) == (original["size"], 1, os.geteuid())
    assert while_processing and not [
        seen for seen in while_processing if seen[0] == "in-place.mp4" or seen[1] == st.st_ino
    ]
    segments = [root / k for k in file_stack.stored.keys(f"media/{media['id']}/hls") if k.endswith(".ts")]
    assert segments
    inodes = {p.stat().st_ino for p in segments}
    with watching(file_stack.temp_dir) as while_remuxing:
        answer = file_api.post(f"/api/v1/media/{media['id']}/downloads", json={"type": "mp4"})
        assert answer.status_code == 202, answer.text
        wait_job(file_api, answer.json()["job"]["id"], "succeeded", timeout_s=120)
    assert while_remuxing and not [
        seen for seen in while_remuxing if seen[0].endswith(".ts") or seen[1] in inodes
    ]
    assert {(p.stat().st_uid, p.stat().st_nlink) for p in segments} == {(os.geteuid(), 1)}
    [mp4] = by_type(outputs_ready(file_api, media["id"]), "mp4")
    assert mp4["ready"] and len(fetch(file_api, mp4["url"]).content) == mp4["size"]
    file_stack.assert_temp_empty()
