"""/api/v1/jobs: submit, look at, list, cancel, retry and follow jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mediajobs.api import idempotency
from mediajobs.api.deps import DbDep, ServicesDep
from mediajobs.api.openapi import JOB_LINKS, problem, problems, success
from mediajobs.api.problems import invalid, params_problem
from mediajobs.api.sse import job_events
from mediajobs.db.models import Job
from mediajobs.jobs import lifecycle, rows, states
from mediajobs.jobs.lifecycle import ParamsRejected
from mediajobs.jobs.registry import registry
from mediajobs.jobs.schemas import JobCreate, JobPage, JobPublic, public, public_many

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
# One event of the stream (OpenAPI 3.1: the media type's schema describes each event): a `job` event whose
# data is the job JSON; the first one only sets `retry`.
JOB_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "const": "job"},
        "id": {"type": "string", "description": "the event's sequence number"},
        "retry": {"type": "integer", "description": "milliseconds to wait before reconnecting"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/JobPublic"},
        },
    },
}


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    responses=success(202, "the job, recorded and queued", located=True, links=JOB_LINKS)
    | problem(422, "unknown kind or invalid params; `errors` names each field of `params` that does not fit"),
)
async def create_job(
    body: JobCreate,
    db: DbDep,
    services: ServicesDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    idem = idempotency.use(request, idempotency_key, body.model_dump(mode="json"))
    key = idem.key
    if key is not None and (replayed := await run_in_threadpool(idempotency.replay, db, idem)):
        return replayed
    if body.kind not in registry or not registry.get(body.kind).public:
        known = ", ".join(registry.names(public_only=True))
        raise invalid(["kind"], f"unknown kind {body.kind!r}; known kinds: {known}")
    answer: dict[str, Any] = {}

    def remember(session: Session, job: Job) -> None:
        # In the job's transaction only when there is a key: the group commit's lock is held meanwhile.
        answer.update(public(job))
        location = f"/api/v1/jobs/{job.id}"
        idempotency.remember(session, idem, status=202, body=answer, location=location)

    try:
        job = await lifecycle.submit_grouped(
            services,
            request.app.state.batch_writer.write,
            kind=body.kind,
            params=body.params,
            priority=body.priority,
            max_attempts=body.max_attempts,
            with_job=remember if key is not None else None,
        )
    except ParamsRejected as exc:
        raise params_problem(exc) from exc
    except IntegrityError:
        if (replayed := await run_in_threadpool(idempotency.replay, db, idem)) is not None:
            return replayed  # a concurrent twin with the same key won
        raise
    answer = answer or public(job)
    return JSONResponse(answer, status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.get("", response_model=JobPage, responses=problem(422, "a bad filter, limit or cursor"))
def list_jobs(
    db: DbDep,
    state: str | None = None,
    kind: str | None = None,
    media_id: str | None = None,
    parent_id: Annotated[str | None, Query(description="only the child jobs of this job")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    if state is not None and state not in states.STATES:
        raise invalid(["state"], f"unknown state {state!r}; one of {', '.join(states.STATES)}")
    try:
        page = rows.list_jobs(
            db, state=state, kind=kind, media_id=media_id, parent_id=parent_id, limit=limit, cursor=cursor
        )
    except ValueError as exc:
        raise invalid(["cursor"], str(exc)) from exc
    return {"items": public_many(db, list(page.items)), "next_cursor": page.next_cursor}


@router.get("/{job_id}", response_model=JobPublic, responses=problems(404))
def get_job(job_id: str, db: DbDep) -> dict[str, Any]:
    return public_many(db, [rows.get_job(db, job_id)])[0]


@router.delete(
    "/{job_id}",
    response_model=JobPublic,
    status_code=202,
    responses=success(202, "cancelled, or (a running job) `cancel_requested` until its work has stopped")
    | success(200, "the job had already finished; nothing changed", JobPublic)
    | problems(404),
)
def cancel_job(job_id: str, db: DbDep, services: ServicesDep) -> JSONResponse:
    job, changed = lifecycle.cancel(services, job_id)
    return JSONResponse(public_many(db, [job])[0], status_code=202 if changed else 200)


@router.post(
    "/{job_id}/retry",
    response_model=JobPublic,
    status_code=202,
    responses=success(202, "queued again as a new attempt", located=True, links=JOB_LINKS)
    | problems(404)
    | problem(409, "only failed or cancelled jobs can be retried"),
)
def retry_job(job_id: str, db: DbDep, services: ServicesDep) -> JSONResponse:
    job = lifecycle.retry(services, job_id)
    location = {"Location": f"/api/v1/jobs/{job.id}"}
    return JSONResponse(public_many(db, [job])[0], status_code=202, headers=location)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses=success(
        200,
        "one `job` event with the job JSON on every change, until it is terminal",
        content={"text/event-stream": {"schema": JOB_EVENT}},
    )
    | problems(404)
    | problem(429, "the caller has MEDIAJOBS_MAX_STREAMS_PER_CALLER streams open already; see `Retry-After`"),
)
async def follow_job(job_id: str, db: DbDep, request: Request) -> StreamingResponse:
    return await job_events(request, db, job_id)
