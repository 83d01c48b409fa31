"""The kinds of bench/engine.py, loaded by the workers it starts through MEDIAJOBS_KIND_MODULES."""

from __future__ import annotations

from pydantic import BaseModel

from mediajobs.jobs.context import JobContext
from mediajobs.jobs.fanout import FanOut
from mediajobs.jobs.registry import job_kind


class FanParams(BaseModel):
    n: int


@job_kind("bench.noop", queue="io")
def noop(ctx: JobContext, params: BaseModel) -> None:
    """Nothing: what is measured is the engine around it."""


@job_kind("bench.fan", params=FanParams)
def fan(ctx: JobContext, params: FanParams) -> FanOut:
    """Fan out to `n` bench.noop children; the job ends when they have."""
    return ctx.fan_out([("bench.noop", {})] * params.n)
