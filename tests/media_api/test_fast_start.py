"""Publish in seconds, finish in parallel: fast start and chunked transcoding through the API and workers.

One stack with two one-slot workers and MEDIAJOBS_CHUNK_THRESHOLD_S=8, so a 12 s clip is encoded as chunk
jobs on both at once, like a long video on a cluster.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mediajobs.testing.servers import wait_for
from mediajobs.toolkit.hls.playlists import parse_media_playlist
from tests.media_api.helpers import JSON, get_media, upload, wait_gone, wait_job, wait_media
from tests.stacks import MediaStack, StackPool
from tests.toolkit import hlscheck
from tests.toolkit.test_ladder import check_ladder, encode_source


@pytest.fixture(scope="module")
def chunked(stack_pool: StackPool) -> MediaStack:
    return stack_pool.get("chunked", "file", workers=2, concurrency=1, chunk_threshold_s="8")


@pytest.fixture
def capi(chunked: MediaStack) -> Iterator[httpx.Client]:
    with chunked.client() as client:
        yield client


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("fast-start")
    return {
        "standard": encode_source(work / "standard.mp4", "-c:v", "libx264", "-preset", "ultrafast",
                                  "-g", "50", "-c:a", "aac", duration=12.0),
        "hevc": encode_source(work / "hevc.mkv", "-c:v", "libx265", "-preset", "ultrafast",
                              "-x265-params", "log-level=error", "-c:a", "libopus", duration=12.0),
    }  # fmt: skip


TERMINAL = ("succeeded", "failed", "cancelled")


class Watch:
    """Samples an asset and its media.process job while it works, as a client polling the API would."""

    def __init__(self, api: httpx.Client, media_id: str, job_id: str) -> None:
        self.api, self.media_id, self.job_id = api, media_id, job_id
        self.first_playable: JSON | None = None
        self.playlist_then: dict[str, str] = {}
        self.progress: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=str(self.api.base_url), timeout=10) as api:
            while not self.done.is_set():
                media = api.get(f"/api/v1/media/{self.media_id}").json()
                job = api.get(f"/api/v1/jobs/{self.job_id}").json()
                self.progress.append(job["progress"])
                playing = media.get("playable_at") and media["state"] == "processing"
                if self.first_playable is None and playing:
                    self.first_playable = media
                    master = api.get(media["hls"]["master_url"])
                    self.playlist_then["master"] = master.text
                    for v in media["hls"]["variants"]:
                        self.playlist_then[str(v["height"])] = api.get(v["url"]).text
                # The asset is swapped in a moment before its job writes its last progress.
                if media["state"] in ("ready", "failed") and job["state"] in TERMINAL:
                    return
                time.sleep(0.05)


def watch(api: httpx.Client, created: JSON) -> tuple[Watch, threading.Thread]:
    w = Watch(api, created["media"]["id"], created["job"]["id"])
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    return w, thread


def long_standard(out: Path, *, pictures: str = "filler", pieces: int = 9) -> Path:
    """A 72 s 640x360 H.264/AAC upload of about 300 MB, 2 s GOPs, its index first: a stream whose whole cut
    takes seconds, made in seconds (one 8 s piece, copied `pieces` times).

    Its bytes are `pictures`: "filler", 34 Mbit/s CBR padded with filler data as broadcast encoders write,
    pictures that cost little to decode (the worker decodes the whole copy once, for damage); or "noise" at a
    low QP, every byte a picture's, so that damage anywhere in the file is damage to pictures.
    """
    piece = out.with_suffix(".piece.ts")
    if pictures == "filler":
        video = ["-b:v", "34M", "-minrate", "34M", "-maxrate", "34M", "-bufsize", "34M"]
        video += ["-x264-params", "nal-hrd=cbr:filler=1"]
    else:
        video = ["-vf", "noise=alls=8:allf=t", "-qp", "10"]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi",
         "-i", "sine=frequency=440:sample_rate=48000", "-t", "8", "-c:v", "libx264", "-preset", "ultrafast",
         *video, "-g", "50", "-c:a", "aac", str(piece)],
        check=True,
    )  # fmt: skip
    listing = out.with_suffix(".txt")
    listing.write_text(f"file '{piece.name}'\n" * pieces)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
         "-movflags", "+faststart", str(out)],
        check=True,
    )  # fmt: skip
    piece.unlink()
    return out


@pytest.fixture(scope="module")
def long_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_standard(tmp_path_factory.mktemp("long") / "long.mp4")


@pytest.fixture(scope="module")
def long_noisy_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_standard(tmp_path_factory.mktemp("long") / "noisy.mp4", pictures="noise")


class FirstPlay:
    """What a client saw the first time the asset played: the media, its playlists, the stored segments."""

    def __init__(self, stack: MediaStack, api: httpx.Client, media_id: str) -> None:
        self.stack, self.api, self.media_id = stack, api, media_id
        self.media: JSON | None = None
        self.playlists: dict[str, str] = {}
        self.segments_then: list[str] = []
        self.failed: JSON | None = None
        self.states: list[str] = []  # every state a client read, in order

    def run(self) -> None:
        with httpx.Client(base_url=str(self.api.base_url), timeout=10) as api:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                media = api.get(f"/api/v1/media/{self.media_id}").json()
                if not self.states or self.states[-1] != media["state"]:
                    self.states.append(media["state"])
                if media.get("hls") and self.media is None:
                    # Storage first: whatever the playlists list was stored before this look.
                    stored = self.stack.stored.keys(f"media/{self.media_id}")
                    self.segments_then = [k for k in stored if k.endswith(".ts")]
                    self.media = media
                    master = media["hls"]["master_url"]
                    urls = {"master": master, "audio": master.rsplit("/", 1)[0] + "/audio/index.m3u8"}
                    urls |= {str(v["height"]): v["url"] for v in media["hls"]["variants"]}
                    for name, url in urls.items():
                        self.playlists[name] = api.get(url).text
                if media["state"] in ("ready", "failed"):
                    return
                time.sleep(0.05)


def target(playlist: str) -> str:
    found = re.search(r"#EXT-X-TARGETDURATION:(\d+)", playlist)
    assert found is not None, playlist
    return found.group(1)


def first_play(stack: MediaStack, api: httpx.Client, created: JSON) -> tuple[FirstPlay, threading.Thread]:
    seen = FirstPlay(stack, api, created["media"]["id"])
    thread = threading.Thread(target=seen.run, daemon=True)
    thread.start()
    return seen, thread


def stored_hls(stack: MediaStack, media: JSON) -> Path:
    assert stack.stored.root is not None
    path = media["hls"]["master_url"].split("/files/")[1].rsplit("/", 1)[0]
    return stack.stored.root / "media" / media["id"] / path


def test_standard_upload_plays_its_own_stream_while_the_rungs_below_are_encoded_in_chunks(
    chunked: MediaStack, capi: httpx.Client, sources: dict[str, Path], tmp_path: Path
) -> None:
    created = upload(capi, sources["standard"])
    w, thread = watch(capi, created)
    media = wait_media(capi, created["media"]["id"], "ready", "failed", timeout_s=120)
    thread.join(10)

    assert media["state"] == "ready", media
    early = w.first_playable
    assert early is not None, "the asset never played while it was processing"
    assert [(v["height"], v["ready"]) for v in early["hls"]["variants"]] == [(480, True), (360, False)]
    # The master played then lists the ready rendition only, whose playlist is whole: seekable anywhere.
    assert "480p/index.m3u8" in w.playlist_then["master"] and "360p" not in w.playlist_then["master"]
    assert "#EXT-X-ENDLIST" in w.playlist_then["480"]
    assert [(v["height"], v["ready"]) for v in media["hls"]["variants"]] == [(480, True), (360, True)]
    assert media["playable_at"] == early["playable_at"]
    assert media["playable_at"] < media["updated_at"]
    jobs = [capi.get(f"/api/v1/jobs/{j}").json() for j in media["jobs"]]
    assert sorted(j["kind"] for j in jobs).count("media.transcode_chunk") >= 2
    assert w.progress == sorted(w.progress) and w.progress[-1] == 100.0
    check_ladder(stored_hls(chunked, media), sources["standard"], tmp_path)


def test_hevc_upload_plays_once_its_first_chunk_is_stored_and_grows_to_a_whole_ladder(
    chunked: MediaStack, capi: httpx.Client, sources: dict[str, Path], tmp_path: Path
) -> None:
    created = upload(capi, sources["hevc"])
    w, thread = watch(capi, created)
    media = wait_media(capi, created["media"]["id"], "ready", "failed", timeout_s=180)
    thread.join(10)

    assert media["state"] == "ready", media
    early = w.first_playable
    assert early is not None, "the asset never played while it was processing"
    assert all(not v["ready"] for v in early["hls"]["variants"])
    grown = w.playlist_then["480"]
    # A growing playlist: players wait for more and may not seek past what is listed.
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in grown and "#EXT-X-START:TIME-OFFSET=0" in grown
    listed = len(parse_media_playlist(grown))
    assert listed >= 1
    if "#EXT-X-ENDLIST" not in grown:
        assert listed < 5
    process_job = capi.get(f"/api/v1/jobs/{created['job']['id']}").json()
    children = capi.get("/api/v1/jobs", params={"parent_id": process_job["id"], "limit": 50}).json()["items"]
    assert {c["kind"] for c in children} == {"media.transcode_chunk"}
    assert len(children) >= 3  # the audio, the short first chunk, the rest
    assert w.progress == sorted(w.progress) and w.progress[-1] == 100.0
    check_ladder(stored_hls(chunked, media), sources["hevc"], tmp_path)


def test_hevc_upload_plays_once_one_rung_and_the_audio_have_their_first_segment(
    chunked: MediaStack, capi: httpx.Client, sources: dict[str, Path], tmp_path: Path
) -> None:
    created = upload(capi, sources["hevc"])
    seen, thread = first_play(chunked, capi, created)
    media = wait_media(capi, created["media"]["id"], "ready", "failed", timeout_s=180)
    thread.join(10)

    assert media["state"] == "ready", media
    assert seen.media is not None, "the asset never played while it was processing"
    # Made first, and nothing else before it played: the first (short) segment of one rung and of the sound.
    assert sorted(k.split("/hls/")[1].split("/", 1)[1] for k in seen.segments_then) == [
        "480p/seg_00000.ts", "audio/seg_00000.ts"
    ]  # fmt: skip
    assert "480p/index.m3u8" in seen.playlists["master"] and "360p" not in seen.playlists["master"]
    for name in ("480", "audio"):
        growing = seen.playlists[name]
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing and "#EXT-X-ENDLIST" not in growing, growing
        assert [d for d, _ in parse_media_playlist(growing)] == [2.0]
    final = stored_hls(chunked, media)
    for name in ("480p", "360p", "audio"):
        playlist = (final / name / "index.m3u8").read_text()
        assert parse_media_playlist(playlist)[0][0] == 2.0
        assert target(playlist) == target(seen.playlists["480"])
    # The lead's audio segment and those encoded after it join as one encode: no gap, no overlap.
    check_ladder(final, sources["hevc"], tmp_path)


def test_a_small_hevc_upload_whose_ladder_is_one_rung_becomes_ready(
    capi: httpx.Client, tmp_path: Path
) -> None:
    # 320x180: the ladder holds one rung, which the lead makes; there is no other rung's first segment.
    codec = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-c:a", "libopus"]
    small = encode_source(tmp_path / "small.mkv", *codec, duration=12.0, size="320x180")
    created = upload(capi, small)
    job = wait_job(capi, created["job"]["id"], *TERMINAL, timeout_s=180)
    media = wait_media(capi, created["media"]["id"], "ready", "failed", timeout_s=60)

    assert job["state"] == "succeeded", job
    assert [(v["height"], v["ready"]) for v in media["hls"]["variants"]] == [(180, True)], media["hls"]


def test_deleting_an_asset_mid_chunk_stops_every_chunk_and_leaves_nothing(
    chunked: MediaStack, capi: httpx.Client, sources: dict[str, Path]
) -> None:
    created = upload(capi, sources["hevc"])
    media_id = created["media"]["id"]
    wait_for(lambda: any_chunk_running(capi, created), timeout_s=60, message="a chunk job to run")

    assert capi.delete(f"/api/v1/media/{media_id}").status_code == 202
    wait_gone(capi, media_id, timeout_s=60)

    jobs = capi.get("/api/v1/jobs", params={"media_id": media_id, "limit": 100}).json()["items"]
    assert all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs), jobs
    assert chunked.stored.keys(f"media/{media_id}") == []
    chunked.assert_temp_empty()


def any_chunk_running(api: httpx.Client, created: JSON) -> bool:
    items = api.get("/api/v1/jobs", params={"parent_id": created["job"]["id"], "limit": 50}).json()["items"]
    return any(j["state"] == "running" and j["progress"] > 0 for j in items)


def test_cancelling_the_processing_mid_chunk_fails_the_asset_and_removes_its_partial_stream(
    chunked: MediaStack, capi: httpx.Client, sources: dict[str, Path]
) -> None:
    created = upload(capi, sources["hevc"])
    media_id = created["media"]["id"]
    wait_for(lambda: any_chunk_running(capi, created), timeout_s=60, message="a chunk job to run")

    assert capi.delete(f"/api/v1/jobs/{created['job']['id']}").status_code in (200, 202)
    wait_job(capi, created["job"]["id"], "cancelled", timeout_s=30)
    media = wait_media(capi, media_id, "failed", timeout_s=30)

    assert media["error"]["code"] == "cancelled" and media["hls"] is None and media["playable_at"] is None
    assert media["thumbnail_url"] is None  # it showed early; it goes with the stream
    wait_for(
        lambda: not [k for k in chunked.stored.keys(f"media/{media_id}") if "/original/" not in k],
        timeout_s=30,
        message="the partial stream and its thumbnail to be removed",
    )
    assert [k for k in chunked.stored.keys(f"media/{media_id}") if "/original/" in k]  # the upload stays
    chunked.assert_temp_empty()


def test_a_chunk_whose_worker_dies_is_retried_alone_and_the_asset_still_becomes_ready(
    chunked: MediaStack, capi: httpx.Client, sources: dict[str, Path], tmp_path: Path
) -> None:
    created = upload(capi, sources["hevc"])
    wait_for(lambda: any_chunk_running(capi, created), timeout_s=60, message="a chunk job to run")
    victim = chunked.stack.workers[0]

    chunked.stack.kill_worker(victim)
    try:
        media = wait_media(capi, created["media"]["id"], "ready", "failed", timeout_s=180)
    finally:
        chunked.stack.workers.remove(victim)
        chunked.stack.start_worker("io,cpu,default", 1)

    assert media["state"] == "ready", media
    query = {"parent_id": created["job"]["id"], "limit": 50}
    children = capi.get("/api/v1/jobs", params=query).json()["items"]
    assert all(c["state"] == "succeeded" for c in children)
    assert [c["attempt"] for c in children].count(1) >= len(children) - 1  # only the killed one ran again
    check_ladder(stored_hls(chunked, media), sources["hevc"], tmp_path)


def test_a_corrupt_region_fails_its_chunk_and_the_asset_says_where(
    chunked: MediaStack, capi: httpx.Client, tmp_path: Path
) -> None:
    clean = tmp_path / "clean.ts"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25", "-f", "lavfi",
         "-i", "sine", "-t", "20", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
         "-f", "mpegts", str(clean)],
        check=True,
    )  # fmt: skip
    data = bytearray(clean.read_bytes())
    for i in range(int(len(data) * 0.55), int(len(data) * 0.60)):
        data[i] = (i * 7919) % 251  # garbage over a twentieth of the file, past its first chunk
    broken = tmp_path / "broken.ts"
    broken.write_bytes(bytes(data))

    created = upload(capi, broken, content_type="video/mp2t")
    media = wait_media(capi, created["media"]["id"], "ready", "failed", timeout_s=120)

    assert media["state"] == "failed", media
    assert media["error"]["code"] == "unsupported_media"
    assert "corrupt between" in media["error"]["message"]
    assert media["hls"] is None  # the copied top rendition played meanwhile; it is withdrawn
    query = {"parent_id": created["job"]["id"], "limit": 50}
    children = capi.get("/api/v1/jobs", params=query).json()["items"]
    failed = [c for c in children if c["state"] == "failed"]
    assert [c["error"]["code"] for c in failed] == ["unsupported_media"]
    chunked.assert_temp_empty()
    assert get_media(capi, media["id"])["state"] == "failed"


def test_a_long_standard_upload_plays_before_its_whole_stream_is_cut(
    chunked: MediaStack, capi: httpx.Client, long_source: Path, tmp_path: Path
) -> None:
    created = upload(capi, long_source)
    seen, thread = first_play(chunked, capi, created)
    media = wait_media(capi, created["media"]["id"], "ready", "failed", timeout_s=180)
    thread.join(10)

    assert media["state"] == "ready", media
    assert seen.media is not None, "the asset never played while it was processing"
    # It played first while its own stream was still being cut: a growing EVENT playlist (video and audio),
    # listing the first segments only, and the last segment was not stored yet.
    assert [(v["height"], v["ready"]) for v in seen.media["hls"]["variants"]] == [(360, False)]
    final = stored_hls(chunked, media)
    every = parse_media_playlist((final / "360p" / "index.m3u8").read_text())
    for name in ("360", "audio"):
        growing = seen.playlists[name]
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing and "#EXT-X-ENDLIST" not in growing, growing
        listed = parse_media_playlist(growing)
        assert 1 <= len(listed) < len(every)
        assert listed == every[: len(listed)]  # what was published never changed, it only grew
        assert target(growing) == target((final / "360p" / "index.m3u8").read_text())  # RFC 8216: unchanged
    last = f"360p/seg_{len(every) - 1:05d}.ts"
    assert not any(k.endswith(last) for k in seen.segments_then), "the whole stream was cut before it played"
    assert "360p/index.m3u8" in seen.playlists["master"]
    # The copy, read as its playlist lists it, is the source's stream packet for packet (no decoding: the
    # checks that decode are test_standard_upload_plays_its_own_stream...'s, on a small source).
    found = hlscheck.renditions(final)
    assert len({tuple(r.durations) for r in found.values()}) == 1
    copied = hlscheck.packets(hlscheck.joined(found["360p"], tmp_path), "v:0")
    assert len(copied) == len(hlscheck.packets(long_source, "v:0"))
    assert hlscheck.monotonic(hlscheck.joined(found["audio"], tmp_path), "a:0")
    assert hlscheck.largest_audio_gap_s(hlscheck.joined(found["audio"], tmp_path)) < 0.002


@pytest.mark.parametrize(
    "damaged",
    [
        # Every byte a picture's: the damage is hit first by the H.264 decoder.
        pytest.param("long_noisy_source", id="pictures"),
        # 34 Mbit/s of filler with cheap pictures: the damage mostly hits filler, and the AAC decoder fails
        # first ("channel element 2.4 is not allocated"), a complaint the worker did not know as damage.
        pytest.param("long_source", id="sound"),
    ],
)
def test_a_long_upload_whose_tail_is_corrupt_withdraws_the_stream_it_published(
    chunked: MediaStack, capi: httpx.Client, damaged: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source: Path = request.getfixturevalue(damaged)
    broken = tmp_path / "broken.mp4"
    shutil.copyfile(source, broken)
    size = broken.stat().st_size
    with broken.open("r+b") as f:
        f.seek(int(size * 0.80))  # the index is at the front: the last fifth of the pictures and sound
        f.write(bytes((i * 7919) % 251 for i in range(size // 20)))

    created = upload(capi, broken)
    seen, thread = first_play(chunked, capi, created)
    media = wait_media(capi, created["media"]["id"], "ready", "failed", timeout_s=180)
    thread.join(10)

    assert seen.media is not None, "the asset never played: nothing was published to withdraw"
    assert media["state"] == "failed", media
    assert "ready" not in seen.states, seen.states
    assert media["error"]["code"] == "unsupported_media", media["error"]
    assert "damaged" in media["error"]["message"], media["error"]  # plain words, not ffmpeg's
    assert "channel element" not in media["error"]["message"]
    assert media["hls"] is None and media["playable_at"] is None
    job = wait_job(capi, created["job"]["id"], *TERMINAL)
    assert job["state"] == "failed" and job["error"]["code"] == "unsupported_media", job["error"]
    wait_for(
        lambda: not [k for k in chunked.stored.keys(f"media/{media['id']}") if "/hls/" in k],
        timeout_s=30,
        message="the published stream to be removed",
    )
    # The master a player had, gone (the files go once the failure is recorded: not in the same instant).
    assert capi.get(seen.media["hls"]["master_url"]).status_code == 404
    chunked.assert_temp_empty()
    # What the asset says stays so: it is not put back to ready once its job has ended.
    for _ in range(6):
        again = get_media(capi, media["id"])
        assert (again["state"], again["hls"], again["playable_at"]) == ("failed", None, None), again
        time.sleep(0.5)
