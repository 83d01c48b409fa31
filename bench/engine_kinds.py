"""The kinds of bench/engine.py, loaded by the workers it starts through MEDIAJOBS_KIND_MODULES."""

from __future__ import annotations

from pydantic import BaseModel

from mediajobs.jobs.context import JobContext
from mediajobs.jobs.fanout import FanOut
from mediajobs.jobs.registry import job_kind


class FanParams(BaseModel):
    n: int


class CountParams(BaseModel):
    path: str


@job_kind("bench.noop", queue="io")
def noop(ctx: JobContext, params: BaseModel) -> None:
    """Nothing: what is measured is the engine around it."""


@job_kind("bench.fan", params=FanParams)
def fan(ctx: JobContext, params: FanParams) -> FanOut:
    """Fan out to `n` bench.noop children; the job ends when they have."""
    return ctx.fan_out([("bench.noop", {})] * params.n)


@job_kind("bench.count", params=CountParams)
def count(ctx: JobContext, params: CountParams) -> None:
    """Append a line to `path` each time it runs: duplicates show as a job id written twice."""
    with open(params.path, "a") as f:
        f.write(f"{ctx.job_id} {ctx.attempt}\n")
