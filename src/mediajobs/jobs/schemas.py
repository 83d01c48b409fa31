"""The job JSON of the public API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from mediajobs.db.models import Job


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=100, description="a registered job kind, e.g. test.add")
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = Field(default=None, ge=0, le=9, description="0 (lowest) to 9 (most urgent)")
    max_attempts: int | None = Field(default=None, ge=1, le=100)


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

    @field_serializer("created_at", "started_at", "finished_at", "updated_at")
    def _iso(self, value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None


class JobPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None


def public(job: Job) -> dict[str, Any]:
    return JobPublic.model_validate(job).model_dump(mode="json")
