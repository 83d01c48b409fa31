"""Work a route accepts: record the job (and asset) with the idempotency answer, publish it, answer 202."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from mediajobs.api import idempotency
from mediajobs.api.problems import params_problem
from mediajobs.broker import broker_for
from mediajobs.db.models import Job, Media
from mediajobs.db.session import Database
from mediajobs.jobs import lifecycle
from mediajobs.jobs.lifecycle import ParamsRejected
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
    scope: str | None = None,
    key: str | None = None,
    answer: Answer | None = None,
    location: str | None = None,
) -> Job:
    """Record (asset and) job in one transaction with the idempotency key's answer, then publish the job."""

    def with_job(session: Session, job: Job) -> None:
        if media is not None:
            session.add(media)
        if answer is not None:
            session.flush()
            where = location or f"/api/v1/jobs/{job.id}"
            idempotency.remember(session, scope or "", key, status=202, body=answer(job), location=where)

    broker = broker_for(request.app.state.settings)
    try:
        return lifecycle.submit(db, broker, kind=kind, params=params, media_id=media_id, with_job=with_job)
    except ParamsRejected as exc:
        raise params_problem(exc) from exc


def accepted(
    request: Request,
    db: Database,
    *,
    kind: str,
    params: dict[str, Any],
    media_id: str,
    scope: str,
    key: str | None,
    media: Media | None = None,
    answer: Answer | None = None,
) -> JSONResponse:
    """Record and publish a job on an asset; 202 with `answer(job)` (default `{"job": ...}`) located at it."""
    answer = answer or (lambda job: {"job": job_public(job)})
    job = record_and_publish(
        request,
        db,
        media=media,
        kind=kind,
        params=params,
        media_id=media_id,
        scope=scope,
        key=key,
        answer=answer,
    )
    return JSONResponse(answer(job), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})
