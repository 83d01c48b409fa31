"""The JSON the routes answer with, as the OpenAPI description publishes it: problems, media, webhooks, kinds.

The job and media JSON come from their own models (`jobs/schemas.JobPublic`, `media/schemas.MediaPublic`),
which make the answers too; the other routes build theirs as dicts (`endpoints.endpoint_public`), which
these models only document (`responses=`). No model forbids extra properties.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mediajobs.jobs.schemas import JobError, JobPublic
from mediajobs.media.schemas import MediaPublic


class FieldError(BaseModel):
    """One field that does not fit: where it is and what to fix."""

    loc: list[str | int] = Field(description='the path to the field, e.g. ["params", "x"]')
    field: str = Field(description="the same path, dotted")
    message: str
    type: str
    in_: str | None = Field(default=None, alias="in", description="body, query, path or header")


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error answer."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description='"urn:mediajobs:problem:<slug>", or "about:blank"')
    title: str
    status: int
    detail: str = Field(description="what went wrong and what to do about it")
    errors: list[FieldError] | None = Field(default=None, description="for 400 and 422: each bad field")


class NotReady(Problem):
    """The 503 of /readyz: which parts are unreachable (the reasons go to the server log)."""

    checks: dict[str, str]
    failing: list[str]


class MediaAccepted(BaseModel):
    """An asset and the job that works on it."""

    media: MediaPublic
    job: JobPublic


class MediaDeleting(BaseModel):
    """An asset being removed, and the job removing it (null when that job already ended)."""

    media: MediaPublic
    job: JobPublic | None


class JobAccepted(BaseModel):
    """The job an operation started (and, for mask and remove-frames, the asset it makes)."""

    job: JobPublic
    media: MediaPublic | None = None


class MediaPage(BaseModel):
    items: list[MediaPublic]
    next_cursor: str | None


class WebhookPublic(BaseModel):
    id: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: str
    updated_at: str


class WebhookCreated(WebhookPublic):
    """The new endpoint; its signing `secret` is shown in this answer only."""

    secret: str


class WebhookPage(BaseModel):
    items: list[WebhookPublic]
    next_cursor: str | None


class DeliveryAttempt(BaseModel):
    at: str
    status_code: int | None
    error: JobError | None = Field(description="why the attempt failed (`timeout`, `http_status`, ...)")
    duration_ms: float
    response: str | None = Field(description="the start of the endpoint's answer")


class DeliveryPublic(BaseModel):
    id: str
    endpoint_id: str
    event: str
    state: str = Field(description="pending, retrying, succeeded or failed")
    attempts: list[DeliveryAttempt]
    next_attempt_at: str | None
    job_id: str | None
    created_at: str
    updated_at: str


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None


class KindPublic(BaseModel):
    """A registered job kind."""

    name: str
    public: bool = Field(description="whether POST /api/v1/jobs accepts it (other kinds are internal)")
    queue: str
    params_schema: dict[str, Any] = Field(description="the JSON Schema of the kind's `params`")
    description: str
    max_attempts: int
    priority: int
    soft_time_limit_s: float
    time_limit_s: float


class KindList(BaseModel):
    items: list[KindPublic]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str] = Field(description='"ok" or "unreachable" for database, broker and storage')
