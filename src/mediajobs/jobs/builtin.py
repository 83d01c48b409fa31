"""Built-in diagnostic kinds: test.add, test.sleep, test.long_task."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import job_kind


class AddParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float
    y: float


class SleepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=86400)


class LongTaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=10.0, ge=0.5, le=3600)


@job_kind("test.add", params=AddParams, soft_time_limit_s=30)
def add(ctx: JobContext, params: AddParams) -> float | int:
    """Add x and y."""
    total = params.x + params.y
    return int(total) if total.is_integer() else total


@job_kind("test.sleep", params=SleepParams, soft_time_limit_s=86400)
def sleep(ctx: JobContext, params: SleepParams) -> dict[str, float]:
    """Sleep for `seconds`, reporting progress; stops at once when cancelled."""
    step = 0.5
    waited = 0.0
    while waited < params.seconds:
        chunk = min(step, params.seconds - waited)
        ctx.sleep(chunk)
        waited += chunk
        ctx.progress(100.0 * waited / params.seconds, f"Slept {waited:.1f} of {params.seconds:g} s")
    return {"slept": params.seconds}


STAGES = ("Preparing", "Downloading", "Processing", "Uploading", "Finishing")


@job_kind("test.long_task", params=LongTaskParams, soft_time_limit_s=7200)
def long_task(ctx: JobContext, params: LongTaskParams) -> dict[str, object]:
    """Five named stages over about `seconds` (default 10 s), with progress and ETA."""
    steps_per_stage = 10
    tick = params.seconds / (len(STAGES) * steps_per_stage)
    for index, name in enumerate(STAGES):
        for step in range(steps_per_stage):
            done = index * steps_per_stage + step
            ctx.progress(
                100.0 * done / (len(STAGES) * steps_per_stage),
                f"Stage {index + 1}/{len(STAGES)}: {name} (step {step + 1}/{steps_per_stage})",
            )
            ctx.sleep(tick)
    ctx.progress(100.0, "Done")
    return {"stages": list(STAGES)}
