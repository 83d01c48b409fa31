"""/api/v1/jobs: submit, look at, list, cancel, retry and follow jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mediajobs.api import idempotency
from mediajobs.api.deps import DbDep, SettingsDep
from mediajobs.api.problems import Problem, field_error, invalid
from mediajobs.api.sse import job_events
from mediajobs.broker import broker_for
from mediajobs.db.models import Job
from mediajobs.jobs import lifecycle, service, states
from mediajobs.jobs.lifecycle import ParamsRejected
from mediajobs.jobs.registry import registry
from mediajobs.jobs.schemas import JobCreate, JobPage, JobPublic, public, public_many

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
SCOPE = "POST /api/v1/jobs"


def params_problem(exc: ParamsRejected) -> Problem:
    """The 422 naming each field of `params` that does not fit the kind's model."""
    errors = [
        field_error(["params", *err["loc"]], err["msg"], err.get("type", "value_error")) for err in exc.errors
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(422, f"invalid params for {exc.kind}: {detail}", errors=errors, slug="validation")


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    responses={422: {"description": "unknown kind or invalid params"}},
)
async def create_job(
    body: JobCreate,
    db: DbDep,
    settings: SettingsDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    key = idempotency.check_key(idempotency_key)
    if key is not None and (replayed := await run_in_threadpool(idempotency.replay, db, SCOPE, key)):
        return replayed
    if body.kind not in registry or not registry.get(body.kind).public:
        known = ", ".join(registry.names(public_only=True))
        raise invalid(["kind"], f"unknown kind {body.kind!r}; known kinds: {known}")
    answer: dict[str, Any] = {}

    def remember(session: Session, job: Job) -> None:
        # In the job's transaction only when there is a key: the group commit's lock is held meanwhile.
        answer.update(public(job))
        location = f"/api/v1/jobs/{job.id}"
        idempotency.remember(session, SCOPE, key, status=202, body=answer, location=location)

    try:
        job = await lifecycle.submit_grouped(
            db,
            broker_for(settings),
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
        if (replayed := await run_in_threadpool(idempotency.replay, db, SCOPE, key)) is not None:
            return replayed  # a concurrent twin with the same key won
        raise
    answer = answer or public(job)
    return JSONResponse(answer, status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.get("", response_model=JobPage)
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
        page = service.list_jobs(
            db, state=state, kind=kind, media_id=media_id, parent_id=parent_id, limit=limit, cursor=cursor
        )
    except ValueError as exc:
        raise invalid(["cursor"], str(exc)) from exc
    return {"items": public_many(db, list(page.items)), "next_cursor": page.next_cursor}


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, db: DbDep) -> dict[str, Any]:
    return public_many(db, [service.get_job(db, job_id)])[0]


@router.delete("/{job_id}", response_model=JobPublic, status_code=202)
def cancel_job(job_id: str, db: DbDep) -> JSONResponse:
    job, changed = lifecycle.cancel(db, job_id)
    return JSONResponse(public_many(db, [job])[0], status_code=202 if changed else 200)


@router.post("/{job_id}/retry", response_model=JobPublic, status_code=202)
def retry_job(job_id: str, db: DbDep, settings: SettingsDep) -> JSONResponse:
    job = lifecycle.retry(db, broker_for(settings), job_id)
    location = {"Location": f"/api/v1/jobs/{job.id}"}
    return JSONResponse(public_many(db, [job])[0], status_code=202, headers=location)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def follow_job(job_id: str, db: DbDep, request: Request) -> StreamingResponse:
    return await job_events(request, db, job_id)
