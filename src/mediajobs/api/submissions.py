"""Work a route accepts: record the job (and asset) with the idempotency answer, publish it, answer 202."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from mediajobs.api import idempotency
from mediajobs.api.problems import params_problem
from mediajobs.db.models import Job, Media
from mediajobs.db.session import Database
from mediajobs.jobs import lifecycle
from mediajobs.jobs.lifecycle import ParamsRejected, WithJob
from mediajobs.jobs.schemas import public as job_public

Answer = Callable[[Job], dict[str, Any]]


def record_and_publish(
    request: Request,
    db: Database,
    *,
    media: Media | None,
    kind: str,
    params: dict[str, Any],
    media_id: str,
    with_job: WithJob | None = None,
) -> Job:
    """Record (asset and) job in one transaction (with what `with_job` adds), then publish the job."""

    def recorded(session: Session, job: Job) -> None:
        if media is not None:
            session.add(media)
        if with_job is not None:
            session.flush()
            with_job(session, job)

    services = request.app.state.services
    try:
        return lifecycle.submit(services, kind=kind, params=params, media_id=media_id, with_job=recorded)
    except ParamsRejected as exc:
        raise params_problem(exc) from exc


def accepted(
    request: Request,
    db: Database,
    *,
    kind: str,
    params: dict[str, Any],
    media_id: str,
    idem: idempotency.Use,
    media: Media | None = None,
    answer: Answer | None = None,
    location: str | None = None,
) -> JSONResponse:
    """Record and publish a job (and a new asset); 202 with `answer(job)` (default `{"job": ...}`).

    The answer is built once, as the job is recorded: the idempotency key replays the same body. It is
    located at `location` (default: the job).
    """
    make = answer or (lambda job: {"job": job_public(job)})
    body: dict[str, Any] = {}

    def remembered(session: Session, job: Job) -> None:
        body.update(make(job))
        where = location or f"/api/v1/jobs/{job.id}"
        idempotency.remember(session, idem, status=202, body=body, location=where)

    job = record_and_publish(
        request, db, media=media, kind=kind, params=params, media_id=media_id, with_job=remembered
    )
    return JSONResponse(body, status_code=202, headers={"Location": location or f"/api/v1/jobs/{job.id}"})
