"""Server-Sent Events for a job: one `job` event per change (at least every 2 s), until it is terminal; a
capped number open at once per caller."""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mediajobs.api.problems import Problem
from mediajobs.api.security import api_key_id
from mediajobs.db.session import Database
from mediajobs.errors import NotFound
from mediajobs.jobs import rows, states
from mediajobs.jobs.schemas import public

POLL_S = 0.25
KEEPALIVE_S = 2.0


class Streams:
    """Event streams open at once, per caller (API key, or client address without keys): each is held by an
    open connection and a poll every 0.25 s, so one caller may not hold too many."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def take(self, request: Request) -> Callable[[], None]:
        """A place for this request's stream (a 429 when its caller has none left); call the result once
        the stream ends."""
        key_id = api_key_id(request)
        caller = f"key {key_id}" if key_id else f"address {request.client.host if request.client else ''}"
        held = self.open.get(caller, 0)
        if self.limit > 0 and held >= self.limit:
            raise Problem(
                429,
                f"at most {self.limit} event streams may be open at once per caller "
                "(MEDIAJOBS_MAX_STREAMS_PER_CALLER); close one, or poll GET /api/v1/jobs/{id}",
                slug="too-many-streams",
                headers={"Retry-After": "5"},
            )
        self.open[caller] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                if (left := self.open.get(caller, 1) - 1) > 0:
                    self.open[caller] = left
                else:
                    self.open.pop(caller, None)

        return release


async def job_events(request: Request, db: Database, job_id: str) -> StreamingResponse:
    first = await run_in_threadpool(rows.get_job, db, job_id)
    release = request.app.state.streams.take(request)

    async def stream() -> AsyncIterator[str]:
        try:
            async for event in events():
                yield event
        finally:
            release()

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        job = first
        last: tuple[object, ...] | None = None
        last_sent = 0.0
        seq = 0
        while True:
            snapshot = (job.updated_at, job.state, job.progress, job.stage, job.cancel_requested, job.attempt)
            now = time.monotonic()
            if snapshot != last or now - last_sent >= KEEPALIVE_S:
                seq += 1
                yield f"event: job\nid: {seq}\ndata: {json.dumps(public(job), separators=(',', ':'))}\n\n"
                last, last_sent = snapshot, now
            if job.state in states.TERMINAL or await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)
            try:
                job = await run_in_threadpool(rows.get_job, db, job_id)
            except NotFound:
                return

    body = stream()
    # A stream that never starts (the client left before its answer began) gives its place back too.
    weakref.finalize(body, release)
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
