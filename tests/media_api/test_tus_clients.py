"""Resumable uploads end to end: tuspy (a tus client no one here wrote) through a proxy that cuts its
connections, two API processes taking turns, local and S3 storage; a cut keeps every byte that arrived; two
PATCHes racing on one upload; expiry; the API's memory while a few hundred MB arrive.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tusclient.client import TusClient

from mediajobs.testing.files import MEDIA_MAGIC, media_like
from mediajobs.testing.servers import free_port, wait_for
from tests.media_api.clips import Clips
from tests.media_api.cutter import CuttingProxy
from tests.media_api.helpers import fetch, wait_media
from tests.stacks import MediaStack, StackPool

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


@pytest.fixture(params=["file", "s3"])
def two_apis(request: pytest.FixtureRequest, stack_pool: StackPool) -> Iterator[tuple[MediaStack, list[int]]]:
    """A stack (API + worker) and a second API process on the same database, broker and storage."""
    stack = stack_pool.get(f"tus-two-{request.param}", request.param)
    port = free_port()
    log = (stack.stack.directory / f"api-second-{port}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediajobs", "api"],
        env={**stack.stack.env, "MEDIAJOBS_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=stack.stack.directory,
    )
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200)
        yield stack, [stack.stack.port, port]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def original_bytes(api: httpx.Client, media: dict[str, object]) -> bytes:
    name = media["original"]["filename"]  # type: ignore[index]
    return fetch(api, f"/api/v1/media/{media['id']}/files/original/{name}").content


def test_tuspy_through_cut_connections_and_two_apis_uploads_the_exact_file(
    two_apis: tuple[MediaStack, list[int]], clips: Clips
) -> None:
    stack, ports = two_apis
    clip = clips.noisy() if stack.storage == "s3" else clips["medium"]  # S3: more than one 8 MiB part
    size = clip.stat().st_size
    chunk = 3 * 1024 * 1024
    piece = min(size, chunk)  # what one PATCH carries at most
    cuts = [piece // 7, piece // 3, piece // 5 + 12345]  # each cuts a PATCH mid-body, at no alignment
    name = f"holiday-{uuid.uuid4().hex[:8]}.mp4"
    proxy = CuttingProxy(ports, cuts=cuts)
    try:
        client = TusClient(f"{proxy.url}/api/v1/uploads")
        uploader = client.uploader(
            str(clip),
            chunk_size=chunk,
            metadata={"filename": name, "filetype": "video/mp4"},
            retries=10,
            retry_delay=0.2,  # type: ignore[arg-type]
        )
        uploader.upload()
    finally:
        proxy.stop()
    assert proxy.cut_count == len(cuts), f"only {proxy.cut_count} cuts happened"
    assert all(proxy.served[port] >= 2 for port in ports), proxy.served
    upload_id = uploader.url.rsplit("/", 1)[1]
    with stack.client() as api:
        head = api.head(f"/api/v1/uploads/{upload_id}", headers=TUS)
        assert head.headers["upload-offset"] == str(size)
        items = api.get("/api/v1/media", params={"limit": 500}).json()["items"]
        media_id = next(m["id"] for m in items if m["source"].get("filename") == name)
        media = wait_media(api, media_id, "ready", "failed")
        assert media["state"] == "ready", media
        assert media["original"]["filename"] == name
        assert sha256(original_bytes(api, media)) == sha256(clip.read_bytes())
        # Nothing of the upload's partial object is left beside the asset's files.
        assert not [k for k in stack.stored.keys(f"media/{media_id}") if "partial" in k or "unfinished" in k]


def send_part_and_cut(port: int, url: str, offset: int, body: bytes, total: int) -> None:
    """A PATCH announcing `total` bytes whose connection dies after `body`."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = (
            f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: {offset}\r\nContent-Type: {OCTETS}\r\nContent-Length: {total}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        time.sleep(0.3)  # let the server read what was sent before the connection goes


def test_a_cut_patch_keeps_every_byte_that_arrived_and_the_upload_resumes_there(
    media_stack: MediaStack, api: httpx.Client, clips: Clips
) -> None:
    data = clips.noisy().read_bytes() if media_stack.storage == "s3" else clips["medium"].read_bytes()
    created = api.post(
        "/api/v1/uploads",
        headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": "filename Y3V0Lm1wNA=="},
    )
    url, media_id = created.headers["location"], created.headers["mediajobs-media-id"]
    first = 1_234_567  # on S3 a tail shorter than a part, waiting in the bucket
    send_part_and_cut(media_stack.stack.port, url, 0, data[:first], len(data))
    assert api.head(url, headers=TUS).headers["upload-offset"] == str(first)
    media = api.get(f"/api/v1/media/{media_id}").json()
    assert media["state"] == "uploading" and media["upload"]["offset"] == first
    second = len(data) - 1000  # on S3: a whole part and another tail
    send_part_and_cut(media_stack.stack.port, url, first, data[first:second], len(data) - first)
    assert api.head(url, headers=TUS).headers["upload-offset"] == str(second)
    last = api.patch(
        url, headers={**TUS, "Upload-Offset": str(second), "Content-Type": OCTETS}, content=data[second:]
    )
    assert last.status_code == 204, last.text
    media = wait_media(api, media_id, "ready", "failed")
    assert media["state"] == "ready", media
    assert sha256(original_bytes(api, media)) == sha256(data)


def test_two_patches_racing_on_one_upload_one_wins_and_no_byte_is_written_twice(
    file_stack: MediaStack, file_api: httpx.Client
) -> None:
    size = 2_000_000
    created = file_api.post(
        "/api/v1/uploads",
        headers={**TUS, "Upload-Length": str(size), "Upload-Metadata": "filename cmFjZS5tcDQ="},
    )
    url, media_id = created.headers["location"], created.headers["mediajobs-media-id"]
    answers: dict[bytes, int] = {}

    def slow_patch(letter: bytes) -> None:
        with socket.create_connection(("127.0.0.1", file_stack.stack.port)) as sock:
            head = (
                f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                f"Content-Type: {OCTETS}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
            )
            sock.sendall(head.encode())
            sock.settimeout(30)
            with contextlib.suppress(OSError):
                for i in range(10):
                    part = letter * (size // 10)
                    sock.sendall(MEDIA_MAGIC + part[len(MEDIA_MAGIC) :] if i == 0 else part)
                    time.sleep(0.1)
            reply = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    reply += chunk
            answers[letter] = int(reply.split(b" ", 2)[1]) if reply else 0

    racers = [threading.Thread(target=slow_patch, args=(letter,)) for letter in (b"A", b"B")]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert sorted(answers.values()) in ([204, 409], [204, 423]), answers
    winner = next(letter for letter, status in answers.items() if status == 204)
    media = wait_media(file_api, media_id, "processing", "failed", "ready")
    assert original_bytes(file_api, media) == MEDIA_MAGIC + winner * (size - len(MEDIA_MAGIC))


def test_an_expired_upload_leaves_nothing_in_the_storage(stack_pool: StackPool, clips: Clips) -> None:
    stack = stack_pool.get("tus-expiry-s3", "s3", upload_expiry_s="2")
    with stack.client() as api:
        created = api.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "20000000"})
        url, media_id = created.headers["location"], created.headers["mediajobs-media-id"]
        part = media_like(9 * 1024 * 1024)  # a whole part in a multipart upload, and a tail object
        answer = api.patch(url, headers={**TUS, "Upload-Offset": "0", "Content-Type": OCTETS}, content=part)
        assert answer.status_code == 204, answer.text
        assert any("unfinished" in k for k in stack.stored.keys(f"media/{media_id}"))
        assert any("partial" in k for k in stack.stored.keys(f"media/{media_id}"))
        wait_for(lambda: api.head(url, headers=TUS).status_code == 410, timeout_s=30, message="the expiry")
        wait_for(lambda: api.get(f"/api/v1/media/{media_id}").status_code == 404, timeout_s=30)
        assert stack.stored.keys(f"media/{media_id}") == []


def test_api_memory_stays_flat_while_hundreds_of_megabytes_arrive(stack_pool: StackPool) -> None:
    stack = stack_pool.get("tus-rss-file", "file", workers=0)
    assert stack.stack.api is not None
    status = Path(f"/proc/{stack.stack.api.pid}/status")

    def rss_kib(field: str) -> int:
        line = next(line for line in status.read_text().splitlines() if line.startswith(field))
        return int(line.split()[1])

    size, block = 300 * 1024 * 1024, os.urandom(1024 * 1024)
    with stack.client() as api:
        created = api.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(size)})
        url = created.headers["location"]
        before = rss_kib("VmRSS:")
        Path(f"/proc/{stack.stack.api.pid}/clear_refs").write_text("5")  # VmHWM from here on

        def body() -> Iterator[bytes]:
            yield MEDIA_MAGIC + block[len(MEDIA_MAGIC) :]
            for _ in range(size // len(block) - 1):
                yield block

        answer = api.patch(
            url,
            headers={**TUS, "Upload-Offset": "0", "Content-Type": OCTETS, "Content-Length": str(size)},
            content=body(),
            timeout=300,
        )
        assert answer.status_code == 204 and answer.headers["upload-offset"] == str(size), answer.text
    grown_mib = (rss_kib("VmHWM:") - before) / 1024
    assert grown_mib < 60, f"the API grew by {grown_mib:.0f} MiB while 300 MiB arrived"
