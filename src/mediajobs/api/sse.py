"""Server-Sent Events for a job: one `job` event per change (at least every 2 s), until it is terminal."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mediajobs.db.session import Database
from mediajobs.errors import NotFound
from mediajobs.jobs import rows, states
from mediajobs.jobs.schemas import public

POLL_S = 0.25
KEEPALIVE_S = 2.0


async def job_events(request: Request, db: Database, job_id: str) -> StreamingResponse:
    first = await run_in_threadpool(rows.get_job, db, job_id)

    async def stream() -> AsyncIterator[str]:
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

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
