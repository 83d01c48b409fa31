"""Job kinds of an application that fans out, used by tests/test_fanout.py through MEDIAJOBS_KIND_MODULES."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mediajobs.errors import UnsupportedMedia
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.fanout import FanOut
from mediajobs.jobs.registry import job_kind


class SplitParams(BaseModel):
    n: int
    runs: str
    seconds: float = 0.0
    # Children from this index on take `seconds`; those before it end at once.
    slow_from: int = 0
    join: bool = False
    # A child's params made invalid on purpose (its index is not a number).
    bad_child: bool = False
    # The parent's own first step, as a ladder's probe and plan: reported as 4 %, taking this long; the
    # children then fill 4-97 % (each taking `seconds` times its weight) and the join the rest.
    own_seconds: float = 0.0


class ChunkParams(BaseModel):
    index: int
    runs: str
    seconds: float = 0.0


@job_kind("fan.split", params=SplitParams)
def split(ctx: JobContext, params: SplitParams) -> FanOut:
    """Fan out to `n` fan.chunk children (the first weighing double), joined by fan.join when asked."""
    weights = [2.0 if i == 0 else 1.0 for i in range(params.n)]
    # A ladder-like parent's children take time in proportion to their weight, as a ladder's chunks do.
    scale = weights if params.own_seconds else [1.0] * params.n
    children: list[tuple[str, dict[str, Any], float]] = [
        (
            "fan.chunk",
            {
                "index": i,
                "runs": params.runs,
                "seconds": params.seconds * scale[i] if i >= params.slow_from else 0.0,
            },
            weights[i],
        )
        for i in range(params.n)
    ]
    if params.bad_child:
        children[-1] = ("fan.chunk", {"index": "last", "runs": params.runs}, 1.0)
    if params.own_seconds:
        ctx.progress(4.0, "Planning")
        ctx.sleep(params.own_seconds)
        return ctx.fan_out(children, then="fan.join" if params.join else None, span=(4.0, 97.0))
    return ctx.fan_out(children, then="fan.join" if params.join else None)


@job_kind("fan.chunk", params=ChunkParams, max_attempts=2)
def chunk(ctx: JobContext, params: ChunkParams) -> int:
    """Append `job attempt index pid` to `runs`, take `seconds`, and fail while `runs`.fail-<index> exists."""
    with open(params.runs, "a") as f:
        f.write(f"{ctx.job_id} {ctx.attempt} {params.index} {os.getpid()}\n")
    steps = max(5, round(params.seconds * 10))  # a report every 0.1 s or so, as an encode's progress comes
    for step in range(steps):
        ctx.progress(100 * step / steps, f"chunk {params.index}")
        ctx.sleep(params.seconds / steps)
    if Path(f"{params.runs}.fail-{params.index}").exists():
        raise UnsupportedMedia(f"chunk {params.index} is broken")
    return params.index


@job_kind("fan.join", params=SplitParams)
def join(ctx: JobContext, params: SplitParams) -> int:
    """Sum the children's results (their indexes), in order."""
    results = ctx.child_results()
    assert results == list(range(params.n)), results
    return sum(results)
