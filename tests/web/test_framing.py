"""Clickjacking: a page on another origin that frames the UI shows nothing of it (Chromium obeys headers)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser

from mediajobs.testing.servers import RedisServer
from mediajobs.testing.stacks import Stack, stack_env


@contextlib.contextmanager
def serving(host: str, pages: dict[str, str]) -> Iterator[str]:
    """A plain web server on `host` answering `pages` (path -> HTML), with no framing rules of its own."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = pages.get(self.path, "nothing here").encode()
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ui_only(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Stack]:
    """An API alone: nothing here runs a job."""
    directory = tmp_path_factory.mktemp("framing")
    stack = Stack(directory, stack_env(directory, broker_url=redis_server.new_url()))
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()


def test_another_origin_cannot_show_the_ui_in_a_frame(browser: Browser, ui_only: Stack) -> None:
    control_page = "<!doctype html><title>control</title><p id=shown>framed fine</p>"
    with serving("127.0.0.1", {"/control.html": control_page}) as neighbour:
        frames = (
            f'<iframe id=ui src="{ui_only.api_url}/"></iframe>'
            f'<iframe id=docs src="{ui_only.api_url}/docs"></iframe>'
            f'<iframe id=control src="{neighbour}/control.html"></iframe>'
        )
        with serving("127.0.0.2", {"/evil.html": f"<!doctype html><title>evil</title>{frames}"}) as evil:
            context = browser.new_context()
            try:
                page = context.new_page()
                page.goto(f"{evil}/evil.html")
                # The control frame (a page without the headers) loads: frames work on this page at all.
                control = page.frame_locator("#control").locator("#shown")
                control.wait_for(timeout=15_000)
                assert control.text_content() == "framed fine"
                page.wait_for_load_state("load")
                for frame_id in ("ui", "docs"):
                    frame = page.query_selector(f"#{frame_id}")
                    assert frame is not None
                    content = frame.content_frame()
                    assert content is not None
                    # Chromium swaps a refused frame for its own error page: none of the UI is there.
                    assert not content.url.startswith(ui_only.api_url), content.url
                    assert content.query_selector(".site-header, #swagger-ui") is None
            finally:
                context.close()


def test_the_ui_itself_still_loads(browser: Browser, ui_only: Stack) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{ui_only.api_url}/")
        page.locator(".site-header").wait_for(timeout=15_000)
    finally:
        context.close()
