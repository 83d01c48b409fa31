"""Webhooks end to end: a real API and worker deliver to a receiver on 127.0.0.2 through the egress guard."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from standardwebhooks.webhooks import Webhook

from mediajobs.testing.servers import wait_for
from mediajobs.testing.stacks import Stack
from tests.conftest import submit
from tests.webhooks.conftest import client
from tests.webhooks.receiver import Behaviour, Received, Receiver

MiB = 1024 * 1024


def register(api: httpx.Client, url: str, events: list[str]) -> dict[str, Any]:
    response = api.post("/api/v1/webhooks", json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def unique_path(name: str) -> str:
    return f"/{name}/{uuid.uuid4().hex[:8]}"


def wait_requests(receiver: Receiver, path: str, count: int, timeout_s: float = 30) -> list[Received]:
    wait_for(
        lambda: len(receiver.at(path)) >= count,
        timeout_s=timeout_s,
        interval_s=0.05,
        message=f"{count} request(s) at {path}",
    )
    return receiver.at(path)


def events_of(requests: list[Received], event_type: str) -> list[dict[str, Any]]:
    found = [json.loads(r.body) for r in requests]
    return [p for p in found if p["type"] == event_type]


def deliveries(api: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/webhooks/{endpoint_id}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def wait_delivery(api: httpx.Client, endpoint_id: str, *states: str, attempts: int = 1) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        items = deliveries(api, endpoint_id)
        done = [d for d in items if d["state"] in states and len(d["attempts"]) >= attempts]
        return done[0] if done else None

    return wait_for(check, timeout_s=30, message=f"a delivery {'/'.join(states)}")  # type: ignore[return-value]


def test_job_succeeded_arrives_signed_as_standard_webhooks_says(any_stack: Stack, receiver: Receiver) -> None:
    path = unique_path("ok")
    with client(any_stack) as api:
        endpoint = register(api, receiver.url(path), ["job.succeeded"])
        job = submit(api, "test.add", {"x": 1, "y": 2})
        [request] = wait_requests(receiver, path, 1)
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert payload["type"] == "job.succeeded"
        assert payload["timestamp"].endswith("Z")
        assert payload["data"]["id"] == job["id"]
        assert payload["data"]["state"] == "succeeded"
        assert payload["data"]["result"] == 3
        assert request.headers["content-type"] == "application/json"
        logged = wait_delivery(api, endpoint["id"], "succeeded")
        assert logged["id"] == request.headers["webhook-id"]
        assert logged["event"] == "job.succeeded"
        [attempt] = logged["attempts"]
        assert attempt["status_code"] == 200 and attempt["error"] is None
        assert attempt["duration_ms"] >= 0 and attempt["at"].endswith("Z")


def test_failing_receiver_is_retried_and_the_log_shows_every_attempt(
    api: httpx.Client, receiver: Receiver
) -> None:
    path = unique_path("flaky")
    receiver.scripts[path] = [500, 500, 200]
    endpoint = register(api, receiver.url(path), ["job.succeeded"])
    submit(api, "test.add", {"x": 2, "y": 2})
    requests = wait_requests(receiver, path, 3)
    # Same message id on every attempt, each with its own valid signature.
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for request in requests:
        Webhook(endpoint["secret"]).verify(request.body, request.headers)
    logged = wait_delivery(api, endpoint["id"], "succeeded", attempts=3)
    assert [a["status_code"] for a in logged["attempts"]] == [500, 500, 200]
    assert logged["attempts"][0]["error"]["code"] == "http_status"
    assert logged["attempts"][0]["response"] == "answered 500"

    redelivered = api.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{logged['id']}/redeliver")
    assert redelivered.status_code == 202, redelivered.text
    again = wait_requests(receiver, path, 4)[-1]
    assert again.headers["webhook-id"] == logged["id"]
    Webhook(endpoint["secret"]).verify(again.body, again.headers)
    assert len(wait_delivery(api, endpoint["id"], "succeeded", attempts=4)["attempts"]) == 4


def test_secret_is_shown_once_and_never_in_get(api: httpx.Client, receiver: Receiver) -> None:
    endpoint = register(api, receiver.url(unique_path("secret")), ["media.ready", "job.failed"])
    assert endpoint["secret"].startswith("whsec_")
    one = api.get(f"/api/v1/webhooks/{endpoint['id']}")
    listed = api.get("/api/v1/webhooks", params={"limit": 500})
    assert one.status_code == 200 and listed.status_code == 200
    assert one.json()["events"] == ["media.ready", "job.failed"]
    assert "secret" not in one.json()
    assert endpoint["id"] in [e["id"] for e in listed.json()["items"]]
    assert endpoint["secret"] not in one.text + listed.text


def test_registration_refuses_internal_urls_and_unknown_events(api: httpx.Client, internal: Receiver) -> None:
    for url in (internal.url("/hook"), "http://localhost:9/hook", "http://[::1]/", "ftp://127.0.0.2/x"):
        response = api.post("/api/v1/webhooks", json={"url": url, "events": ["job.succeeded"]})
        assert response.status_code == 422, (url, response.text)
        assert response.json()["errors"][0]["field"] == "url"
    response = api.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.2/x", "events": ["job.succeeded", "job.done"]}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "events"
    assert "job.done" in response.json()["detail"] and "media.deleted" in response.json()["detail"]
    assert internal.requests == []


def test_unknown_and_malformed_ids_are_404(api: httpx.Client, receiver: Receiver) -> None:
    endpoint = register(api, receiver.url(unique_path("ids")), ["job.succeeded"])
    for path in (
        f"/api/v1/webhooks/{uuid.uuid4()}",
        "/api/v1/webhooks/not-an-id",
        f"/api/v1/webhooks/{uuid.uuid4()}/deliveries",
        f"/api/v1/webhooks/{endpoint['id']}/deliveries/{uuid.uuid4()}",
    ):
        assert api.get(path).status_code == 404, path
    missing = api.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/nope/redeliver")
    assert missing.status_code == 404
    assert api.delete("/api/v1/webhooks/not-an-id").status_code == 404


def test_routes_need_the_api_key(stack: Stack) -> None:
    with stack.client() as anonymous:
        assert anonymous.get("/api/v1/webhooks").status_code == 401
        response = anonymous.post(
            "/api/v1/webhooks", json={"url": "http://127.0.0.2/x", "events": ["job.succeeded"]}
        )
        assert response.status_code == 401


def _set_url(stack: Stack, endpoint_id: str, url: str) -> None:
    """Point a registered endpoint elsewhere, as a DNS change after registration would."""
    engine = create_engine(stack.env["MEDIAJOBS_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE webhook_endpoints SET url = :url WHERE id = :id"), {"url": url, "id": endpoint_id}
        )
    engine.dispose()


def test_delivery_to_a_name_now_internal_is_refused_by_the_guard(
    stack: Stack, api: httpx.Client, receiver: Receiver, internal: Receiver
) -> None:
    endpoint = register(api, receiver.url(unique_path("rebind")), ["job.succeeded"])
    # localhost is only resolved by the guard, at connect time, and resolves to 127.0.0.1.
    _set_url(stack, endpoint["id"], f"http://localhost:{internal.port}/latest/meta-data/")
    submit(api, "test.add", {"x": 1, "y": 1})
    logged = wait_delivery(api, endpoint["id"], "failed")
    [attempt] = logged["attempts"]
    assert attempt["error"]["code"] == "forbidden_address"
    assert attempt["status_code"] is None
    assert internal.requests == []
    # The guard's socket directory and the job's temp dir go with the attempt.
    temp = Path(stack.env["MEDIAJOBS_TEMP_DIR"])
    wait_for(lambda: not any(temp.rglob("*")), timeout_s=10, message="the worker temp dir to be empty")


def test_redirects_are_not_followed(api: httpx.Client, receiver: Receiver, internal: Receiver) -> None:
    path = unique_path("redirect")
    receiver.redirects[path] = internal.url("/admin")
    endpoint = register(api, receiver.url(path), ["job.succeeded"])
    submit(api, "test.add", {"x": 1, "y": 1})
    logged = wait_delivery(api, endpoint["id"], "retrying", "failed")
    assert logged["attempts"][0]["status_code"] == 302
    assert "redirects are not followed" in logged["attempts"][0]["error"]["message"]
    assert internal.requests == []
    api.delete(f"/api/v1/webhooks/{endpoint['id']}")


def test_gone_disables_the_endpoint(api: httpx.Client, receiver: Receiver) -> None:
    path = unique_path("gone")
    receiver.scripts[path] = [410]
    endpoint = register(api, receiver.url(path), ["job.succeeded"])
    submit(api, "test.add", {"x": 5, "y": 5})
    logged = wait_delivery(api, endpoint["id"], "failed")
    assert [a["status_code"] for a in logged["attempts"]] == [410]
    shown = api.get(f"/api/v1/webhooks/{endpoint['id']}").json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]


def test_deleted_endpoint_gets_nothing_more(api: httpx.Client, receiver: Receiver) -> None:
    gone, kept = unique_path("deleted"), unique_path("kept")
    doomed = register(api, receiver.url(gone), ["job.succeeded"])
    register(api, receiver.url(kept), ["job.succeeded"])
    assert api.delete(f"/api/v1/webhooks/{doomed['id']}").status_code == 204
    assert api.get(f"/api/v1/webhooks/{doomed['id']}").status_code == 404
    job = submit(api, "test.add", {"x": 3, "y": 4})
    wait_for(
        lambda: any(p["data"]["id"] == job["id"] for p in events_of(receiver.at(kept), "job.succeeded")),
        timeout_s=30,
        message="the kept endpoint to hear of the job",
    )
    assert receiver.at(gone) == []


def test_upload_emits_media_ready_then_media_deleted(
    api: httpx.Client, receiver: Receiver, tmp_path: Path
) -> None:
    path = unique_path("media")
    endpoint = register(api, receiver.url(path), ["media.ready", "media.deleted", "job.failed"])
    clip = tmp_path / "clip.mp4"
    source = ["-f", "lavfi", "-i", "testsrc=duration=1:size=160x90:rate=10", "-pix_fmt", "yuv420p"]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *source, "-c:v", "libx264", str(clip)], check=True)
    uploaded = api.post(
        "/api/v1/media/uploads",
        params={"filename": "clip.mp4", "pipeline": "thumbnail"},
        content=clip.read_bytes(),
        headers={"Content-Type": "video/mp4"},
    )
    assert uploaded.status_code == 202, uploaded.text
    media_id = uploaded.json()["media"]["id"]
    [ready] = events_of(wait_requests(receiver, path, 1), "media.ready")
    assert ready["data"]["id"] == media_id and ready["data"]["state"] == "ready"
    assert ready["data"]["probe"]["width"] == 160
    assert api.delete(f"/api/v1/media/{media_id}").status_code == 202
    requests = wait_requests(receiver, path, 2)
    [deleted] = events_of(requests, "media.deleted")
    assert deleted["data"]["id"] == media_id
    for request in requests:
        Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert events_of(requests, "job.failed") == []


def _gzip_bomb() -> bytes:
    """A few KiB that decompress, through two gzip layers, to 1 GiB of zeros."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    layer = b"".join(inner.compress(zeros) for _ in range(1024)) + inner.flush()
    outer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return outer.compress(layer) + outer.flush()


def _peak_rss_bytes(pid: int) -> int:
    """The largest peak resident size (VmHWM) of `pid` and every process below it (a worker's pool)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    family, grew = {pid}, True
    while grew:
        below = {child for child, parent in parents.items() if parent in family} - family
        family |= below
        grew = bool(below)
    peak = 0
    for member in family:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
    return peak


def test_a_compressed_answer_is_read_raw_and_capped(
    stack: Stack, api: httpx.Client, receiver: Receiver
) -> None:
    bomb = _gzip_bomb()
    asked: list[str] = []

    def answer_with_a_bomb(handler: BaseHTTPRequestHandler) -> None:
        asked.append(handler.headers.get("accept-encoding", ""))
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Encoding", "gzip, gzip")  # whatever the client asked for
        handler.send_header("Content-Length", str(len(bomb)))
        handler.end_headers()
        handler.wfile.write(bomb)

    path = unique_path("bomb")
    receiver.behaviours[path] = answer_with_a_bomb
    endpoint = register(api, receiver.url(path), ["job.succeeded"])
    submit(api, "test.add", {"x": 1, "y": 1})
    logged = wait_delivery(api, endpoint["id"], "succeeded", "retrying", "failed")
    [attempt] = logged["attempts"]
    assert attempt["status_code"] == 200 and attempt["error"] is None, attempt
    assert len(attempt["response"]) <= 500
    assert asked == ["identity"]
    # Decoding every layer before the cap made the io worker grow by about 2 GiB per delivery.
    assert _peak_rss_bytes(stack.workers[0].pid) < 512 * MiB


def _drip_after_head(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", "3000")
    handler.end_headers()
    handler.wfile.write(b"ok" * 1024)  # enough for the egress proxy to pass the answer on as it comes
    handler.wfile.flush()
    for _ in range(952):
        time.sleep(3)
        handler.wfile.write(b".")
        handler.wfile.flush()


def _drip_the_head(handler: BaseHTTPRequestHandler) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(3)


@pytest.mark.parametrize("drip", [_drip_after_head, _drip_the_head], ids=["body", "head"])
def test_a_receiver_that_drips_is_a_logged_timeout_and_retried(
    api: httpx.Client, receiver: Receiver, drip: Behaviour
) -> None:
    # httpx's timeout is per read: a byte every 3 s never trips it. The whole attempt has 10 s.
    path = unique_path("drip")
    receiver.behaviours[path] = drip
    endpoint = register(api, receiver.url(path), ["job.succeeded"])
    submit(api, "test.add", {"x": 1, "y": 1})
    try:
        wait_requests(receiver, path, 1)
        started = time.monotonic()
        logged = wait_delivery(api, endpoint["id"], "retrying", "pending", "failed")
        took_s = time.monotonic() - started
        attempt = logged["attempts"][0]
        assert attempt["error"]["code"] == "timeout", attempt
        assert "10 s" in attempt["error"]["message"]
        assert attempt["duration_ms"] < 12_000 and took_s < 20, (attempt, took_s)
        # Retried on the schedule (5 s, scaled down a thousandfold here): the receiver is asked again.
        wait_requests(receiver, path, 2, timeout_s=30)
        assert logged["state"] in ("retrying", "pending") and logged["job_id"]
    finally:
        api.delete(f"/api/v1/webhooks/{endpoint['id']}")  # no more 10 s attempts for this test's sake


def test_a_stored_url_no_client_can_use_fails_its_delivery_once_with_invalid_url(
    stack: Stack, api: httpx.Client, receiver: Receiver
) -> None:
    # Registered before URLs were checked as they are now: a NUL in the host failed every attempt as internal.
    endpoint = register(api, receiver.url(unique_path("nul")), ["job.succeeded"])
    _set_url(stack, endpoint["id"], "http://a\x00b/hook")
    submit(api, "test.add", {"x": 1, "y": 1})
    logged = wait_delivery(api, endpoint["id"], "failed")
    [attempt] = logged["attempts"]
    assert attempt["error"]["code"] == "invalid_url", attempt
