"""The job JSON of the public API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from mediajobs.db.models import Job
from mediajobs.db.session import Database
from mediajobs.jobs import fanout, states


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=100, description="a registered job kind, e.g. test.add")
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = Field(default=None, ge=0, le=9, description="0 (lowest) to 9 (most urgent)")
    max_attempts: int | None = Field(default=None, ge=1, le=100)

    @field_validator("params")
    @classmethod
    def _encodable(cls, params: dict[str, Any]) -> dict[str, Any]:
        # JSON may spell a lone surrogate (`\ud800`); stored, it would make every answer naming the job a 500.
        try:
            json.dumps(params, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                "holds text that is not valid Unicode (a lone surrogate such as \\ud800)"
            ) from exc
        return params


class JobError(BaseModel):
    code: str
    message: str


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    state: str
    params: dict[str, Any]
    progress: float
    stage: str
    eta_seconds: float | None
    attempt: int
    max_attempts: int
    queue: str
    priority: int
    media_id: str | None
    result: Any
    error: JobError | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    parent_id: str | None = Field(default=None, description="the job that fanned out to this one")
    children: dict[str, int] | None = Field(
        default=None, description='a parent\'s child jobs: {"total": n, "<state>": n, ...}; null otherwise'
    )

    @field_serializer("created_at", "started_at", "finished_at", "updated_at")
    def _iso(self, value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None


class JobPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None


def public(job: Job, children: fanout.Summary | None = None) -> dict[str, Any]:
    """The job JSON; a parent's `children` (and, while it waits, its progress) come from their summary.

    Without one (an event stream, a webhook) a parent's `children` says only its total.
    """
    data = JobPublic.model_validate(job).model_dump(mode="json")
    if job.children_total is not None:
        data["children"] = children.counts if children is not None else {"total": job.children_total}
        if children is not None and job.fan_phase == fanout.WAITING and job.state == states.RUNNING:
            data["progress"], data["eta_seconds"] = fanout.waiting_progress(job, children)
        elif job.fan_phase == fanout.JOINING and job.state in (states.QUEUED, states.RUNNING):
            data["progress"] = fanout.joining_progress(job)
    return data


def public_many(db: Database, jobs: list[Job]) -> list[dict[str, Any]]:
    """The job JSON of each of these jobs, the children of the parents among them counted in one query."""
    found = fanout.summaries(db, [job.id for job in jobs if job.children_total is not None])
    return [public(job, found.get(job.id)) for job in jobs]
