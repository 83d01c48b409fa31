"""What a connection may hold before it is a request, and how many event streams a caller may keep open.

Real sockets against a real `mediajobs api` process (no worker: submitted jobs stay queued, so their event
streams stay open for as long as a test likes).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from mediajobs.testing.servers import RedisServer, wait_for
from mediajobs.testing.stacks import Stack, stack_env

HEAD = b"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"

MakeApi = Callable[..., Stack]


@pytest.fixture
def make_api(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[MakeApi]:
    stacks: list[Stack] = []

    def make(**env: str) -> Stack:
        directory = tmp_path_factory.mktemp("connections")
        stack = Stack(directory, stack_env(directory, broker_url=redis_server.new_url(), timings={}, **env))
        stacks.append(stack)
        stack.start_api()
        return stack

    yield make
    for stack in stacks:
        stack.stop()


def _connect(stack: Stack, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=30, source_address=(source, 0))
    sock.setblocking(False)
    return sock


def _closed_by_server(sock: socket.socket) -> bytes | None:
    """What the server sent before closing, or None while the connection is still open."""
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


def test_connections_that_never_finish_their_head_are_closed(make_api: MakeApi) -> None:
    stack = make_api(request_head_timeout_s="3")
    socks = [_connect(stack) for _ in range(20)]
    silent = _connect(stack)  # connects and sends nothing at all
    try:
        started = time.monotonic()
        for sock in socks:
            sock.sendall(HEAD)  # the head, without the blank line that ends it
        answers: dict[int, bytes] = {}

        def all_closed() -> bool:
            # A byte every half second per connection: the deadline is for the whole head, not per read.
            for index, sock in enumerate(socks):
                if index not in answers:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"X")
                    if (got := _closed_by_server(sock)) is not None:
                        answers[index] = got
            return len(answers) == len(socks)

        wait_for(all_closed, timeout_s=30, interval_s=0.5, message="every slow connection closed")
        took_s = time.monotonic() - started
        assert 2.5 < took_s < 15, took_s
        assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers.values()), answers
        wait_for(lambda: _closed_by_server(silent) is not None, timeout_s=10, message="the silent one closed")
        # Meanwhile and after, requests that are whole are answered.
        with stack.client() as api:
            assert api.get("/api/v1/jobs").status_code == 200
    finally:
        for sock in [*socks, silent]:
            sock.close()


def test_a_head_that_never_ends_is_refused_past_its_size_limit(make_api: MakeApi) -> None:
    stack = make_api()
    sock = _connect(stack)
    sock.settimeout(30)
    try:
        sock.sendall(HEAD)
        with contextlib.suppress(OSError):  # the server may hang up while this is still being sent
            for _ in range(200):
                sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    finally:
        sock.close()


def test_a_client_address_may_hold_only_so_many_connections(make_api: MakeApi) -> None:
    stack = make_api(max_connections_per_client="5", request_head_timeout_s="60")
    held = [_connect(stack) for _ in range(5)]
    try:
        time.sleep(0.5)  # let the server count them
        extra = _connect(stack)
        extra.settimeout(30)
        answer = b"".join(iter(lambda: extra.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["status"] == 429
        extra.close()
        assert all(_closed_by_server(sock) is None for sock in held)  # the first five are kept
        # Another address is another client; and a connection closed frees its place.
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            assert other.get(f"{stack.api_url}/healthz").status_code == 200
        held.pop().close()

        def answered() -> bool:
            with stack.client() as api:
                return bool(api.get("/healthz").status_code == 200)

        wait_for(answered, timeout_s=10, message="a place to free up")
    finally:
        for sock in held:
            sock.close()


def _open_stream(client: httpx.Client, job_id: str) -> tuple[contextlib.ExitStack, httpx.Response]:
    stack = contextlib.ExitStack()
    response = stack.enter_context(client.stream("GET", f"/api/v1/jobs/{job_id}/events"))
    return stack, response


def test_event_streams_are_capped_per_api_key(make_api: MakeApi) -> None:
    stack = make_api(api_keys="alice-key,bob-key", max_streams_per_caller="3")
    alice = stack.client(headers={"Authorization": "Bearer alice-key"})
    bob = stack.client(headers={"Authorization": "Bearer bob-key"})
    job = alice.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 2}}).json()
    streams: list[contextlib.ExitStack] = []
    lines: list[Iterator[str]] = []
    try:
        for _ in range(3):
            opened, response = _open_stream(alice, job["id"])
            streams.append(opened)
            assert response.status_code == 200
            # Kept: a line iterator dropped half-way closes its connection (httpcore), ending the stream.
            lines.append(response.iter_lines())
            assert next(lines[-1]).startswith("retry:")
        refused = alice.get(f"/api/v1/jobs/{job['id']}/events")
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "3" in refused.json()["detail"] and refused.headers["retry-after"]
        # Another key has its own allowance.
        opened, response = _open_stream(bob, job["id"])
        streams.append(opened)
        assert response.status_code == 200
        # A stream that ends gives its place back.
        streams.pop(0).close()

        def reopened() -> bool:
            with alice.stream("GET", f"/api/v1/jobs/{job['id']}/events") as response:
                return bool(response.status_code == 200)

        wait_for(reopened, timeout_s=10, message="alice's closed stream to be given back")
    finally:
        for opened in streams:
            opened.close()
        alice.close()
        bob.close()


def test_without_keys_event_streams_are_capped_per_address(make_api: MakeApi) -> None:
    stack = make_api(max_streams_per_caller="2")
    here = stack.client()
    there = httpx.Client(
        base_url=stack.api_url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2")
    )
    job = here.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 2}}).json()
    streams: list[contextlib.ExitStack] = []
    try:
        for _ in range(2):
            opened, response = _open_stream(here, job["id"])
            streams.append(opened)
            assert response.status_code == 200
        assert here.get(f"/api/v1/jobs/{job['id']}/events").status_code == 429
        opened, response = _open_stream(there, job["id"])
        streams.append(opened)
        assert response.status_code == 200
        assert here.get(f"/api/v1/jobs/{uuid.uuid4()}").status_code == 404  # other routes are not capped
    finally:
        for opened in streams:
            opened.close()
        here.close()
        there.close()
