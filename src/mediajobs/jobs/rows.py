"""The job row: its moves between states, the bookkeeping of a running attempt, and looking jobs up.

Each move (`start`, `finish`, `schedule_retry`, `release_retries`, `requeue`, `hand_back`, `request_cancel`,
`retry`; the fan-out ones are in `fanout`) is one conditional UPDATE on (id, state, attempt), so two processes
racing on a job (a duplicate delivery, the reaper and a late worker, a cancel and a finish) cannot both win.
Only `lifecycle` calls them: it adds what must follow a move (publishing, end hooks, fan-in). The `record_*`
writes and `set_published` change no state: they are the running attempt's progress and heartbeat and the
outbox's marks, written directly by the job's context, the watcher and the outbox.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, case, select, update
from sqlalchemy.orm import Session

from mediajobs.db import records
from mediajobs.db.models import Job, utcnow
from mediajobs.db.pages import Page, newest_first
from mediajobs.db.session import Database
from mediajobs.errors import Conflict
from mediajobs.jobs import states
from mediajobs.jobs.registry import Kind


def new_job(
    *,
    kind: Kind,
    params: dict[str, Any],
    priority: int | None = None,
    max_attempts: int | None = None,
    media_id: str | None = None,
) -> Job:
    now = utcnow()
    return Job(
        id=str(uuid.uuid4()),
        kind=kind.name,
        state=states.QUEUED,
        params=params,
        progress=0.0,
        stage="",
        eta_seconds=None,
        attempt=1,
        max_attempts=max_attempts or kind.max_attempts,
        queue=kind.queue,
        priority=kind.priority if priority is None else priority,
        media_id=media_id,
        result=None,
        error=None,
        cancel_requested=False,
        created_at=now,
        updated_at=now,
        time_limit_s=kind.time_limit_s,
        # Claimed by the fast path, which publishes right after the commit and clears this if it cannot.
        published_at=now,
    )


def get_job(db: Database, job_id: str) -> Job:
    return records.get(db, Job, job_id, what="job")


def list_jobs(
    db: Database,
    *,
    state: str | None = None,
    kind: str | None = None,
    media_id: str | None = None,
    parent_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    query = select(Job)
    if parent_id:
        query = query.where(Job.parent_id == parent_id)
    if state:
        query = query.where(Job.state == state)
    if kind:
        query = query.where(Job.kind == kind)
    if media_id:
        query = query.where(Job.media_id == media_id)
    return newest_first(db, query, Job, limit=limit, cursor=cursor)


def _update(session: Session | Connection, job_id: str, *conditions: Any, **values: Any) -> bool:
    values.setdefault("updated_at", utcnow())
    result = session.execute(update(Job).where(Job.id == job_id, *conditions).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


_TABLE: Any = Job.__table__


# A succeeded job's stage: see _move_statement.
FINAL_STAGE = "final_stage"
DONE = "Done"


@functools.lru_cache(maxsize=64)
def _move_statement(names: tuple[str, ...]) -> Any:
    """UPDATE jobs … WHERE id, state IN, attempt … RETURNING *, built once per set of columns.

    The worker runs this twice per job; building the statement anew each time cost more than executing it.
    """
    columns = _TABLE.c
    values: dict[str, Any] = {}
    for name in names:
        if name == FINAL_STAGE:
            # The stage a handler left while working ("Analyzing scenes…") is stale once the job is done: it
            # becomes "Done", unless the handler said its last word at 100 %.
            values["stage"] = case((columns.progress < 100.0, bindparam(f"v_{name}")), else_=columns.stage)
        else:
            values[name] = bindparam(f"v_{name}", type_=columns[name].type)
    return (
        update(_TABLE)
        .where(
            columns.id == bindparam("w_id"),
            columns.state.in_(bindparam("w_states", expanding=True)),
            columns.attempt == bindparam("w_attempt"),
        )
        .values(values)
        .returning(*columns)
    )


def _move(
    session: Session | Connection, job_id: str, attempt: int, from_states: tuple[str, ...], **values: Any
) -> Job | None:
    """A conditional move of one job and the row as it is afterwards, in one statement."""
    values.setdefault("updated_at", utcnow())
    names = tuple(sorted(values))
    params = {
        "w_id": job_id,
        "w_states": list(from_states),
        "w_attempt": attempt,
        **{f"v_{name}": values[name] for name in names},
    }
    row = session.execute(_move_statement(names), params).first()
    return Job(**row._mapping) if row is not None else None


def start(db: Database, *, job_id: str, attempt: int, worker: str) -> Job | None:
    """queued → running for this attempt; None if the job was cancelled, already started or superseded."""
    now = utcnow()
    with db.write_connection() as conn:
        return _move(
            conn,
            job_id,
            attempt,
            (states.QUEUED,),
            state=states.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=worker,
            progress=0.0,
            stage="",
            eta_seconds=None,
            error=None,
        )


def record_progress(
    db: Database, *, job_id: str, attempt: int, progress: float, stage: str, eta_seconds: float | None
) -> None:
    """The running attempt's progress, stage and ETA (and a heartbeat with them); not a move."""
    with db.write_connection() as session:
        _update(
            session,
            job_id,
            Job.state == states.RUNNING,
            Job.attempt == attempt,
            progress=progress,
            stage=stage[:500],
            eta_seconds=eta_seconds,
            heartbeat_at=utcnow(),
        )


def record_heartbeat(db: Database, *, job_id: str, attempt: int) -> bool:
    """Record that this attempt is alive (not a move); False when it is not the running attempt any more."""
    with db.write_connection() as session:
        return _update(
            session, job_id, Job.state == states.RUNNING, Job.attempt == attempt, heartbeat_at=utcnow()
        )


def cancel_requested(db: Database, *, job_id: str) -> bool:
    with db.read() as session:
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish(
    db: Database,
    *,
    job_id: str,
    attempt: int,
    state: str,
    result: Any = None,
    error: dict[str, str] | None = None,
    from_states: tuple[str, ...] = (states.RUNNING,),
) -> Job | None:
    """Move the job to a terminal state; None if someone else already moved it."""
    values: dict[str, Any] = {"state": state, "finished_at": utcnow(), "eta_seconds": None, "error": error}
    if state == states.SUCCEEDED:
        values.update(result=result, progress=100.0, **{FINAL_STAGE: DONE})
    with db.write_connection() as conn:
        return _move(conn, job_id, attempt, from_states, **values)


def schedule_retry(db: Database, *, job_id: str, attempt: int, error: dict[str, str], delay_s: float) -> bool:
    """running → retrying as the next attempt, to be published by the relay after `delay_s`."""
    with db.write() as session:
        return _update(
            session,
            job_id,
            Job.state == states.RUNNING,
            Job.attempt == attempt,
            state=states.RETRYING,
            attempt=attempt + 1,
            run_after=utcnow() + timedelta(seconds=delay_s),
            published_at=None,
            error=error,
            eta_seconds=None,
            worker=None,
        )


def release_retries(db: Database, *, now: datetime) -> int:
    """retrying → queued for every job whose backoff has passed by `now`; the relay publishes them."""
    with db.write() as session:
        released = session.execute(
            update(Job)
            .where(Job.state == states.RETRYING, Job.run_after <= now)
            .values(state=states.QUEUED, run_after=None, updated_at=now)
        )
        return int(released.rowcount)  # type: ignore[attr-defined]


def requeue(db: Database, job: Job, *, error: dict[str, str] | None) -> Job | None:
    """running → queued as the next attempt (its worker vanished), claimed for publishing; None if moved."""
    with db.write() as session:
        if not _update(
            session,
            job.id,
            Job.state == states.RUNNING,
            Job.attempt == job.attempt,
            state=states.QUEUED,
            attempt=job.attempt + 1,
            published_at=utcnow(),
            run_after=None,
            worker=None,
            started_at=None,
            progress=0.0,
            stage="",
            eta_seconds=None,
            error=error,
        ):
            return None
        return session.get(Job, job.id)


def hand_back(db: Database, *, job_id: str, attempt: int) -> Job | None:
    """running → queued as a new attempt that uses none up (its worker is stopping), claimed for publishing.

    The attempt number and the allowance grow together, so progress stays monotonic within an attempt (the
    contract) and the job keeps every attempt it had left. None when it is not running this attempt any more
    or a cancel was asked for (then it ends cancelled).
    """
    with db.write() as session:
        if not _update(
            session,
            job_id,
            Job.state == states.RUNNING,
            Job.attempt == attempt,
            Job.cancel_requested.is_(False),
            state=states.QUEUED,
            attempt=attempt + 1,
            max_attempts=Job.max_attempts + 1,
            published_at=utcnow(),
            worker=None,
            started_at=None,
            progress=0.0,
            stage="Handed back by a stopping worker; waiting for another",
            eta_seconds=None,
        ):
            return None
        return session.get(Job, job_id)


def request_cancel(db: Database, job_id: str) -> tuple[Job, bool]:
    """Cancel at once when not started; ask the worker to stop when running. Returns (job, changed)."""
    job = get_job(db, job_id)
    now = utcnow()
    error = {"code": "cancelled", "message": "cancelled by request before it started"}
    with db.write() as session:
        if _update(
            session,
            job.id,
            Job.state.in_((states.QUEUED, states.RETRYING)),
            state=states.CANCELLED,
            cancel_requested=True,
            finished_at=now,
            eta_seconds=None,
            error=error,
        ):
            return session.get(Job, job.id) or job, True
        if _update(
            session,
            job.id,
            Job.state == states.RUNNING,
            Job.cancel_requested.is_(False),
            cancel_requested=True,
        ):
            return session.get(Job, job.id) or job, True
        current = session.get(Job, job.id) or job
        return current, current.state not in states.TERMINAL


def retry(db: Database, job_id: str) -> Job:
    """failed/cancelled → queued as a new attempt."""
    job = get_job(db, job_id)
    if job.state not in states.RETRYABLE:
        raise Conflict(f"job {job.id} is {job.state}; only failed or cancelled jobs can be retried")
    with db.write() as session:
        won = _update(
            session,
            job.id,
            Job.state == job.state,
            Job.attempt == job.attempt,
            state=states.QUEUED,
            attempt=job.attempt + 1,
            max_attempts=max(job.max_attempts, job.attempt + 1),
            progress=0.0,
            stage="",
            eta_seconds=None,
            result=None,
            error=None,
            cancel_requested=False,
            started_at=None,
            finished_at=None,
            published_at=utcnow(),
            run_after=None,
            worker=None,
        )
        if not won:
            raise Conflict(f"job {job.id} changed while retrying it; look at it again")
        fresh = session.get(Job, job.id)
        assert fresh is not None
        return fresh


def set_published(db: Database, pairs: list[tuple[str, int]], *, published: bool) -> None:
    """Record that these jobs' messages went out (or, with published=False, that they must be sent again)."""
    if not pairs:
        return
    with db.write() as session:
        for job_id, attempt in pairs:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.attempt == attempt, Job.state == states.QUEUED)
                .values(published_at=utcnow() if published else None)
            )
