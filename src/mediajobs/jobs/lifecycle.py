"""The moves of a job, each with its consequences: the only way the rest of the code changes a job.

`rows` holds the row moves (one conditional UPDATE each); the functions here add what must follow them:
a new or re-queued job is published, a job made terminal runs its kind's `on_end` hook and the job-ended
listeners (`jobs/hooks.py`: webhooks emits its events there), exactly once, in whichever process made the
move. Every move gets the process's `Services` (database, settings, broker) from its caller and hands them on
to the hooks. Every job is created by `create` (in a transaction: `submit` makes one of its own, `transaction`
lends one to a caller that commits other rows with its jobs), which checks the params against the kind's
model for every caller; `publish` hands them to the broker once they are committed. (The reaper,
`jobs/reaper.py`, ends jobs through `finish`.) A child job's end is its parent's bookkeeping too (fan-in,
`jobs/fanout.py`): every terminal move does it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from mediajobs.db.models import Job, utcnow
from mediajobs.errors import Conflict, InvalidParams, NotFound
from mediajobs.jobs import fanout, hooks, rows, states
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.outbox import message_of, publisher_for
from mediajobs.jobs.registry import Kind, registry

log = logging.getLogger(__name__)

WithJob = Callable[[Session, Job], None]
# How the API's hot path writes: its group-commit BatchWriter.write, run in shared transactions.
GroupWrite = Callable[[Callable[[Session], None]], Awaitable[None]]


class ParamsRejected(InvalidParams):
    """A job's kind is unknown or its params do not fit the kind's model; `errors` are pydantic's."""

    def __init__(self, kind: str, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.kind = kind
        self.errors = errors


def check_params(kind_name: str, params: dict[str, Any]) -> Kind:
    """The kind, once `params` validate against its model; ParamsRejected otherwise."""
    if kind_name not in registry:
        loc: list[str | int] = ["kind"]
        raise ParamsRejected(kind_name, f"unknown kind {kind_name!r}", [{"loc": loc, "msg": "unknown kind"}])
    kind = registry.get(kind_name)
    try:
        kind.params.model_validate(params)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [dict(err) for err in exc.errors()]
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in errors)
        raise ParamsRejected(kind_name, f"invalid params for {kind_name}: {detail}", errors) from exc
    return kind


def _new(
    kind: str,
    params: dict[str, Any],
    priority: int | None,
    max_attempts: int | None,
    media_id: str | None,
) -> Job:
    return rows.new_job(
        kind=check_params(kind, params),
        params=params,
        priority=priority,
        max_attempts=max_attempts,
        media_id=media_id,
    )


def publish(services: Services, jobs: Iterable[Job]) -> None:
    """Hand committed jobs (`create`d claimed by this fast path) to the background publisher. What it cannot
    send, or never gets to (the process died after the commit), the outbox relay sends (`jobs/outbox.py`)."""
    publisher = publisher_for(services.db, services.broker)
    for job in jobs:
        publisher.submit(message_of(job))


def create(
    session: Session,
    *,
    kind: str,
    params: dict[str, Any],
    priority: int | None = None,
    max_attempts: int | None = None,
    media_id: str | None = None,
) -> Job:
    """Add a job to the caller's write transaction (ParamsRejected if its params do not fit its kind); once
    that commits, `publish` it. Rolled back, it never existed."""
    job = _new(kind, params, priority, max_attempts, media_id)
    session.add(job)
    return job


class Transaction:
    """A write transaction (`session`) in which the caller changes its own rows and creates jobs (`submit`)
    that must exist exactly when those changes do: all commit together, or none does."""

    def __init__(self, session: Session, media_id: str | None) -> None:
        self.session = session
        self.media_id = media_id
        self.jobs: list[Job] = []

    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        priority: int | None = None,
        max_attempts: int | None = None,
        media_id: str | None = None,
    ) -> Job:
        """A job of this transaction (of its asset unless `media_id` says another), published once it
        commits."""
        job = create(
            self.session,
            kind=kind,
            params=params,
            priority=priority,
            max_attempts=max_attempts,
            media_id=media_id or self.media_id,
        )
        self.jobs.append(job)
        return job


@contextlib.contextmanager
def transaction(services: Services, *, media_id: str | None = None) -> Iterator[Transaction]:
    """A write transaction whose jobs (`tx.submit`, of asset `media_id` unless told) are published once it
    has committed; an exception inside rolls everything back and publishes nothing."""
    with services.db.write() as session:
        tx = Transaction(session, media_id)
        yield tx
    publish(services, tx.jobs)


def submit(
    services: Services,
    *,
    kind: str,
    params: dict[str, Any],
    priority: int | None = None,
    max_attempts: int | None = None,
    media_id: str | None = None,
    with_job: WithJob | None = None,
) -> Job:
    """Create a job in its own transaction, then publish it; the row commits before any message exists.

    `with_job(session, job)` adds what must commit in the same transaction (an asset, an idempotency key).
    """
    with transaction(services, media_id=media_id) as tx:
        job = tx.submit(kind, params, priority=priority, max_attempts=max_attempts)
        if with_job is not None:
            with_job(tx.session, job)
    return job


async def submit_grouped(
    services: Services,
    write: GroupWrite,
    *,
    kind: str,
    params: dict[str, Any],
    priority: int | None = None,
    max_attempts: int | None = None,
    with_job: WithJob | None = None,
) -> Job:
    """`submit` through a group-commit writer (the API's hot path): many jobs share one transaction."""
    job = _new(kind, params, priority, max_attempts, None)

    def insert(session: Session) -> None:
        session.add(job)
        if with_job is not None:
            with_job(session, job)

    await write(insert)
    publish(services, [job])
    return job


def start(services: Services, *, job_id: str, attempt: int, worker: str) -> Job | None:
    """queued → running for this attempt; None if cancelled, already started or superseded."""
    return rows.start(services.db, job_id=job_id, attempt=attempt, worker=worker)


def finish(
    services: Services,
    *,
    job_id: str,
    attempt: int,
    state: str,
    result: Any = None,
    error: dict[str, str] | None = None,
    from_states: tuple[str, ...] = (states.RUNNING,),
) -> Job | None:
    """Move the job to a terminal state and run its end hook; None if someone else already moved it."""
    ended = rows.finish(
        services.db,
        job_id=job_id,
        attempt=attempt,
        state=state,
        result=result,
        error=error,
        from_states=from_states,
    )
    if ended is not None:
        _ended(services, ended)
    return ended


def schedule_retry(
    services: Services, *, job_id: str, attempt: int, error: dict[str, str], delay_s: float
) -> bool:
    """running → retrying as the next attempt; queued (and published by the relay) once `delay_s` passed."""
    return rows.schedule_retry(services.db, job_id=job_id, attempt=attempt, error=error, delay_s=delay_s)


def release_retries(services: Services, *, now: datetime | None = None) -> int:
    """retrying → queued for every job whose backoff has passed (the maintenance loop, before the relay)."""
    return rows.release_retries(services.db, now=now or utcnow())


def requeue(services: Services, job: Job, *, error: dict[str, str]) -> Job | None:
    """running → queued as the next attempt, published (its worker vanished: the reaper); None if it moved."""
    requeued = rows.requeue(services.db, job, error=error)
    if requeued is not None:
        publish(services, [requeued])
    return requeued


def cancel(services: Services, job_id: str) -> tuple[Job, bool]:
    """Cancel at once when not started (its end hook runs here); ask the worker to stop when running.

    Returns (job, changed). A running job's end hook runs when its worker (or the reaper) ends it.
    """
    job, changed = rows.request_cancel(services.db, job_id)
    # request_cancel answers changed with a terminal state only when this call made it cancelled.
    if changed and job.state == states.CANCELLED:
        _ended(services, job)
    elif changed and job.fan_phase == fanout.WAITING:
        # No worker watches a waiting parent: its children are cancelled, and the last one's end ends it.
        for child_id in fanout.unfinished_children(services.db, job.id):
            cancel(services, child_id)
        job = rows.get_job(services.db, job.id)
    return job, changed


def retry(services: Services, job_id: str) -> Job:
    """failed/cancelled → queued as a new attempt, published; a parent re-runs its children that failed."""
    db = services.db
    job = rows.get_job(db, job_id)
    if job.children_total is None:
        job = rows.retry(db, job_id)
        publish(services, [job])
        return job
    if job.state not in states.RETRYABLE:
        raise Conflict(f"job {job.id} is {job.state}; only failed or cancelled jobs can be retried")
    with db.write() as session:
        children = fanout.retry(session, job)
    publish(services, children)
    job = rows.get_job(db, job_id)
    if job.state == states.QUEUED:  # every child had succeeded: it joins again
        publish(services, [job])
    return job


def wait_for_children(services: Services, *, job_id: str, attempt: int, fan: fanout.FanOut) -> Job | None:
    """running → waiting for the children of `fan`, created with it and published; None if it moved."""
    made = fanout.wait(services.db, job_id=job_id, attempt=attempt, fan=fan)
    if made is None:
        return None
    parent, children = made
    publish(services, children)
    log.info("job %s waits for %d child jobs", parent.id, len(children))
    if not children:
        _children_done(services, parent)
    return parent


_WITH_CHILDREN = {"code": "cancelled", "message": "cancelled by request with its child jobs"}


def _ended(services: Services, job: Job) -> None:
    """What follows every terminal move: the kind's hook and the job-ended listeners, then fan-in."""
    own = registry.get(job.kind).on_end if job.kind in registry else None
    hooks.job_ended(job, services, own=own)
    _child_ended(services, job)


def _child_ended(services: Services, child: Job) -> None:
    """Fan-in: a failed child fails its parent (its siblings cancelled); the last one completes it."""
    if child.parent_id is None:
        return
    db = services.db
    try:
        parent = rows.get_job(db, child.parent_id)
    except NotFound:
        return
    if parent.state != states.RUNNING or parent.fan_phase != fanout.WAITING:
        return  # already ended (a sibling failed it), or cancelled and ended by another child
    if child.state == states.FAILED or (child.state == states.CANCELLED and not parent.cancel_requested):
        ended = finish(
            services, job_id=parent.id, attempt=parent.attempt, state=states.FAILED, error=_failure_of(child)
        )
        if ended is not None:
            for sibling in fanout.unfinished_children(db, parent.id):
                cancel(services, sibling)
        return
    if fanout.any_unfinished(db, parent.id):
        if (parent.children_total or 0) <= fanout.PROGRESS_WRITES_UP_TO:
            summary = fanout.summaries(db, [parent.id])[parent.id]
            ended_n = sum(n for state, n in summary.counts.items() if state in states.TERMINAL)
            percent, eta = fanout.waiting_progress(parent, summary)
            rows.record_progress(
                db,
                job_id=parent.id,
                attempt=parent.attempt,
                progress=percent,
                stage=f"{ended_n} of {summary.counts['total']} child jobs ended",
                eta_seconds=eta,
            )
        return
    counts = fanout.summaries(db, [parent.id]).get(parent.id, fanout.Summary({"total": 0}, 0.0)).counts
    if parent.cancel_requested:
        finish(
            services, job_id=parent.id, attempt=parent.attempt, state=states.CANCELLED, error=_WITH_CHILDREN
        )
    elif counts.get(states.SUCCEEDED, 0) == counts["total"]:
        _children_done(services, parent)
    else:
        # A child failed, and this sibling's end came before that child's own end failed the parent (they
        # ran side by side): the parent carries that child's error all the same, whichever commits first.
        failed = fanout.first_failed_child(db, parent.id)
        error = (
            _failure_of(failed)
            if failed
            else {"code": "child_failed", "message": f"its child jobs ended {counts}"}
        )
        finish(services, job_id=parent.id, attempt=parent.attempt, state=states.FAILED, error=error)


def _failure_of(child: Job) -> dict[str, str]:
    """A parent's error when `child` failed: the child's code, and which child it was."""
    error = child.error or {}
    code = str(error.get("code") or "child_failed")
    return {
        "code": code,
        "message": f"child job {child.id} ({child.kind}) {child.state}: {error.get('message', '')}",
    }


def _children_done(services: Services, parent: Job) -> None:
    """Every child succeeded: the parent succeeds, or is queued to run its join."""
    if parent.join_kind is None:
        result = {"children": parent.children_total or 0}
        finish(services, job_id=parent.id, attempt=parent.attempt, state=states.SUCCEEDED, result=result)
        return
    joining = fanout.to_join(services.db, parent)
    if joining is None:  # a cancel came meanwhile: it ends cancelled, its children all ended
        finish(
            services, job_id=parent.id, attempt=parent.attempt, state=states.CANCELLED, error=_WITH_CHILDREN
        )
        return
    publish(services, [joining])


def hand_back(services: Services, *, job_id: str, attempt: int) -> Job | None:
    """running → queued as an attempt that uses none up (its worker is stopping), published at once.

    Published from here rather than the background publisher: the calling process is about to exit. If the
    broker refuses, the relay sends it. None when the job is not running this attempt or a cancel came.
    """
    handed = rows.hand_back(services.db, job_id=job_id, attempt=attempt)
    if handed is None:
        return None
    try:
        services.broker.publish(message_of(handed))
        log.info("job %s handed back on attempt %d and published again", handed.id, handed.attempt)
    except Exception as exc:
        log.warning("job %s handed back; the broker refused it (%s), the relay sends it", handed.id, exc)
        with contextlib.suppress(Exception):
            rows.set_published(services.db, [(handed.id, handed.attempt)], published=False)
    return handed
