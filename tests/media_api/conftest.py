"""Media API fixtures: real stacks on a local directory and on a real S3 server, tiny clips, an HTTP source.

Stacks, clips and the HTTP server are shared by the whole directory (starting a stack costs seconds, an
ffmpeg clip a fraction of one); tests isolate themselves by creating their own assets.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import boto3
import httpx
import pytest

from mediajobs import process
from tests.media.conftest import Served, _Handler, generate_clip
from tests.servers import RedisServer, Stack, base_env, wait_for
from tests.storage.moto_server import AWS_ENV, CREDENTIALS, create_bucket, moto_endpoint

__all__ = ["moto_endpoint"]

STORAGES = ["file", "s3"]
S3_PREFIX = "deploy/one"
JSON = dict[str, Any]


class Stored:
    """What a stack's storage holds, read directly (os.walk, or S3 over HTTP), keys relative to its root.

    Local temp files and unfinished S3 multipart uploads count: "nothing stored" means nothing at all.
    """

    def __init__(
        self,
        *,
        root: Path | None = None,
        bucket: str | None = None,
        endpoint_url: str | None = None,
        prefix: str = "",
    ) -> None:
        self.root = root
        self.bucket = bucket
        self.prefix = prefix
        self._s3: Any = boto3.client("s3", endpoint_url=endpoint_url, **CREDENTIALS) if bucket else None

    def keys(self, under: str = "") -> list[str]:
        if self.root is not None:
            base = self.root / under if under else self.root
            paths = (Path(d) / f for d, _, files in os.walk(base) for f in files)
            return sorted(p.relative_to(self.root).as_posix() for p in paths)
        full = f"{self.prefix}/{under}" if self.prefix else under
        strip = len(f"{self.prefix}/") if self.prefix else 0
        found = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            found += [obj["Key"][strip:] for obj in page.get("Contents", [])]
        uploads = self._s3.list_multipart_uploads(Bucket=self.bucket, Prefix=full).get("Uploads", [])
        found += [f"{u['Key'][strip:]} (unfinished multipart upload)" for u in uploads]
        return sorted(found)


@dataclass
class MediaStack:
    """A running API + worker, the storage they share, and where their temp files go."""

    name: str
    storage: str
    stack: Stack
    stored: Stored
    cache: dict[str, Any] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.api_url, timeout=30)

    @property
    def temp_dir(self) -> Path:
        return Path(self.stack.env["MEDIAJOBS_TEMP_DIR"])

    def temp_leftovers(self) -> list[str]:
        if not self.temp_dir.exists():
            return []
        return sorted(str(p.relative_to(self.temp_dir)) for p in self.temp_dir.rglob("*"))

    def assert_temp_empty(self, timeout_s: float = 10) -> None:
        """Jobs clean their temp dirs as they end; give the worker a moment after the state change."""
        try:
            wait_for(
                lambda: not self.temp_leftovers(),
                timeout_s=timeout_s,
                interval_s=0.1,
                message="the worker temp dir to be empty",
            )
        except AssertionError:
            raise AssertionError(f"left in {self.temp_dir}: {self.temp_leftovers()[:20]}") from None

    def logs(self, tail_chars: int = 4000) -> str:
        parts = []
        for path in sorted(self.stack.directory.glob("*.log")):
            parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-tail_chars:]}")
        return "\n".join(parts)


class StackPool:
    """Stacks started on first use and stopped at the end of the session; each has its own Redis database."""

    def __init__(self, tmp: pytest.TempPathFactory, request: pytest.FixtureRequest) -> None:
        self.tmp = tmp
        self.request = request
        self.stacks: dict[str, MediaStack] = {}
        self.redis: RedisServer | None = None

    def get(
        self, name: str, storage: str = "file", *, workers: int = 1, concurrency: int = 2, **env: str
    ) -> MediaStack:
        if name not in self.stacks:
            self.stacks[name] = self._start(name, storage, workers, concurrency, env)
        return self.stacks[name]

    def _start(
        self, name: str, storage: str, workers: int, concurrency: int, env: dict[str, str]
    ) -> MediaStack:
        if self.redis is None:
            self.redis = RedisServer(self.tmp.mktemp("media-redis")).start()
        directory = self.tmp.mktemp(f"media-{name}")
        values = {
            "MEDIAJOBS_DATABASE_URL": f"sqlite:///{directory / 'mediajobs.db'}",
            "MEDIAJOBS_BROKER_URL": self.redis.url.replace("/0", f"/{len(self.stacks) % 16}"),
            "MEDIAJOBS_KIND_MODULES": "tests.kinds",
            "MEDIAJOBS_HEARTBEAT_INTERVAL_S": "0.5",
            "MEDIAJOBS_HEARTBEAT_TIMEOUT_S": "3",
            "MEDIAJOBS_RETRY_BACKOFF_BASE_S": "0.5",
            "MEDIAJOBS_TEMP_DIR": str(directory / "tmp"),
            **{f"MEDIAJOBS_{k.upper()}": v for k, v in env.items()},
        }
        if storage == "file":
            root = directory / "storage"
            root.mkdir()
            values["MEDIAJOBS_STORAGE_URL"] = f"file://{root}"
            stored = Stored(root=root)
        else:
            endpoint: str = self.request.getfixturevalue("moto_endpoint")
            bucket = create_bucket(endpoint)
            values["MEDIAJOBS_STORAGE_URL"] = f"s3://{bucket}/{S3_PREFIX}"
            values["MEDIAJOBS_S3_ENDPOINT_URL"] = endpoint
            values.update(AWS_ENV)
            stored = Stored(bucket=bucket, endpoint_url=endpoint, prefix=S3_PREFIX)
        stack_env = base_env(**values)
        for variable in ("PROFILE", "SESSION_TOKEN", "CONFIG_FILE", "SHARED_CREDENTIALS_FILE"):
            stack_env.pop(f"AWS_{variable}", None)
        stack = Stack(directory, stack_env)
        media_stack = MediaStack(name, storage, stack, stored)
        try:
            stack.start_api()
            for _ in range(workers):
                stack.start_worker("io,cpu,default", concurrency)
        except BaseException:
            stack.stop()
            raise
        return media_stack

    def stop(self) -> None:
        for media_stack in self.stacks.values():
            media_stack.stack.stop()
        if self.redis is not None:
            self.redis.stop()


@pytest.fixture(scope="session")
def stack_pool(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[StackPool]:
    pool = StackPool(tmp_path_factory, request)
    yield pool
    pool.stop()


def main_stack(pool: StackPool, storage: str) -> MediaStack:
    """The shared stack of one storage backend.

    Imports from 127.0.0.1 are allowed (the test HTTP server), and superseded HLS versions are removed
    one second after a reprocess swaps them out instead of after the default grace period.
    """
    return pool.get(f"main-{storage}", storage, import_allow_private="true", hls_swap_grace_s="1")


LIMIT_BYTES = 1_500_000  # over one 1 MiB buffer: a too-large upload has begun writing when it is refused


def limited_file_stack(pool: StackPool) -> MediaStack:
    """A stack on local storage whose MEDIAJOBS_MAX_UPLOAD_BYTES is LIMIT_BYTES."""
    return pool.get("limited-file", "file", max_upload_bytes=str(LIMIT_BYTES), import_allow_private="true")


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


# --- clips and the HTTP source ---------------------------------------------------------------------------

CLIPS: dict[str, dict[str, Any]] = {
    # The everyday asset: small enough that the whole pipeline takes about a second.
    "small": {"duration": 4.0, "width": 640, "height": 360, "fps": 25},
    # Long enough to watch a transcode progress (three rungs: 720p, 480p, 360p) or to cancel one.
    "long": {"duration": 12.0, "width": 1280, "height": 720, "fps": 25},
    # About 2 MB: served slowly (640 KiB/s) it keeps an import busy for a few seconds.
    "medium": {"duration": 10.0, "width": 640, "height": 360, "fps": 25},
    # 1080p: masking it takes seconds, time enough to cancel the mask job while ffmpeg runs.
    "big": {"duration": 12.0, "width": 1920, "height": 1080, "fps": 25},
}


class Clips:
    """Clips generated once per session, by name (see CLIPS)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Path:
        out = self.directory / f"{name}.mp4"
        with self._lock:
            if not out.exists():
                generate_clip(out, **CLIPS[name])
        return out

    def noisy(self) -> Path:
        """A 4 s 640x360 clip of film grain: incompressible, so ~10 MB, more than one 8 MiB S3 part."""
        out = self.directory / "noisy.mp4"
        with self._lock:
            if not out.exists():
                args = [
                    "ffmpeg",
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=640x360:rate=25:duration=4",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000:duration=4",
                    "-vf",
                    "noise=alls=60:allf=t",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    "-t",
                    "4",
                    str(out),
                ]
                process.run(args)
        return out

    def stream_only(self, kind: str) -> Path:
        """A 4 s clip with only an audio (`audio`, .m4a) or only a video (`video`, .mp4) stream."""
        out = self.directory / ("song.m4a" if kind == "audio" else "silent.mp4")
        with self._lock:
            if not out.exists():
                generate_clip(
                    out, duration=4.0, width=640, height=360, audio=kind == "audio", video=kind == "video"
                )
        return out

    def file(self, name: str, data: bytes) -> Path:
        out = self.directory / name
        out.write_bytes(data)
        return out


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

    def handler(*a: Any, **kw: Any) -> _Handler:
        return _Handler(*a, directory=str(root), **kw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Served(root=root, port=server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- API helpers ---------------------------------------------------------------------------------------


def upload(
    api: httpx.Client,
    path: Path,
    *,
    multipart: bool = False,
    filename: str | None = None,
    content_type: str = "video/mp4",
) -> JSON:
    """Upload a file (raw body streamed from disk, or multipart field `file`); returns {"media", "job"}."""
    name = filename or path.name
    with path.open("rb") as f:
        if multipart:
            response = api.post("/api/v1/media/uploads", files={"file": (name, f, content_type)})
        else:
            response = api.post(
                "/api/v1/media/uploads",
                params={"filename": name},
                content=f,
                headers={"Content-Type": content_type},
            )
    assert response.status_code == 202, response.text
    body: JSON = response.json()
    assert set(body) >= {"media", "job"}, body
    return body


def import_url(api: httpx.Client, url: str, **fields: Any) -> JSON:
    response = api.post("/api/v1/media/imports", json={"url": url, **fields})
    assert response.status_code == 202, response.text
    body: JSON = response.json()
    assert set(body) >= {"media", "job"}, body
    return body


def get_media(api: httpx.Client, media_id: str) -> JSON:
    response = api.get(f"/api/v1/media/{media_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_media(api: httpx.Client, media_id: str, *states: str, timeout_s: float = 60) -> JSON:
    def check() -> JSON | None:
        media = get_media(api, media_id)
        return media if media["state"] in states else None

    try:
        return wait_for(
            check,
            timeout_s=timeout_s,
            interval_s=0.1,  # type: ignore[return-value]
            message=f"media {media_id} to be {'/'.join(states)}",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it is {json.dumps(get_media(api, media_id))}") from None


def wait_gone(api: httpx.Client, media_id: str, timeout_s: float = 30) -> None:
    wait_for(
        lambda: api.get(f"/api/v1/media/{media_id}").status_code == 404,
        timeout_s=timeout_s,
        interval_s=0.1,
        message=f"media {media_id} to answer 404",
    )


def wait_job(api: httpx.Client, job_id: str, *states: str, timeout_s: float = 60) -> JSON:
    def check() -> JSON | None:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        return job if job["state"] in states else None

    try:
        return wait_for(
            check,
            timeout_s=timeout_s,
            interval_s=0.1,  # type: ignore[return-value]
            message=f"job {job_id} to be {'/'.join(states)}",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it is {api.get(f'/api/v1/jobs/{job_id}').text}") from None


def ready_asset(media_stack: MediaStack, clips: Clips, name: str = "small") -> JSON:
    """A ready asset of `name`, uploaded once per stack, for tests that only read it."""
    key = f"ready-{name}"
    if key not in media_stack.cache:
        with media_stack.client() as api:
            created = upload(api, clips[name])
            media_stack.cache[key] = wait_media(api, created["media"]["id"], "ready", "failed")
    media: JSON = media_stack.cache[key]
    assert media["state"] == "ready", media
    return media


def fetch(api: httpx.Client, url: str) -> httpx.Response:
    """GET an absolute file URL as a player would: following a redirect to a signed URL."""
    response = api.get(url, follow_redirects=True)
    assert response.status_code == 200, f"GET {url} -> {response.status_code}: {response.text[:300]}"
    return response


def playlist_uris(text: str) -> list[str]:
    """The URIs a playlist references: its non-comment lines and EXT-X-MAP URIs."""
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            uris.append(line)
        elif line.startswith("#EXT-X-MAP:") and 'URI="' in line:
            uris.append(line.split('URI="', 1)[1].split('"', 1)[0])
    return uris


def check_plays(api: httpx.Client, media: JSON, *, video: bool = True) -> None:
    """The master playlist, every variant playlist and a segment of each are fetchable through their URLs."""
    master_url = media["hls"]["master_url"]
    master = fetch(api, master_url)
    assert "mpegurl" in master.headers["content-type"].lower(), master.headers
    text = master.text
    assert text.startswith("#EXTM3U"), text
    stream_infs = [line for line in text.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(stream_infs) == len(media["hls"]["variants"]), text
    for info in stream_infs:
        for attribute in ("BANDWIDTH=", "CODECS=", *(["RESOLUTION="] if video else [])):
            assert attribute in info, f"{attribute} missing in {info!r}"
    listed = [urljoin(master_url, uri) for uri in playlist_uris(text)]
    assert sorted(listed) == sorted(v["url"] for v in media["hls"]["variants"]), (listed, media["hls"])
    for variant_url in listed:
        variant = fetch(api, variant_url)
        assert variant.text.startswith("#EXTM3U") and "#EXTINF:" in variant.text, variant.text[:300]
        segments = playlist_uris(variant.text)
        assert segments, variant.text
        for segment_uri in segments[:2]:
            segment = fetch(api, urljoin(variant_url, segment_uri))
            assert len(segment.content) > 100, f"segment {segment_uri} is {len(segment.content)} bytes"


def raw_get(base_url: str, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written: no client-side normalisation of '..' or percent-escapes."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def problem(response: httpx.Response, status: int) -> JSON:
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: JSON = response.json()
    assert body["status"] == status and body["detail"], body
    return body


def names_field(body: JSON, *names: str) -> bool:
    """Whether a 422 problem names one of `names`: a segment of an error's field, or a word of its message."""
    for error in body.get("errors") or []:
        segments = str(error.get("field", "")).split(".")
        message = str(error.get("message", ""))
        if any(name in segments or re.search(rf"\b{re.escape(name)}\b", message) for name in names):
            return True
    return False


def error_code(thing: JSON) -> str | None:
    error = thing.get("error")
    return error.get("code") if isinstance(error, dict) else error


def all_media_ids(api: httpx.Client) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/v1/media", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids |= {m["id"] for m in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return ids
