"""The reaper: running jobs whose worker stopped heartbeating are re-queued or ended, never left running.

Every move it makes goes through `lifecycle` (a re-queued job is published at once, an ended one runs its
end hooks).

A parent waiting for its child jobs is running with no worker and no heartbeat: the reaper leaves it be.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, or_, select

from mediajobs.db.models import IdempotencyKey, Job, utcnow
from mediajobs.db.session import Database
from mediajobs.jobs import fanout, lifecycle, states
from mediajobs.jobs.hooks import Services

log = logging.getLogger(__name__)


def reap(services: Services, *, heartbeat_timeout_s: float) -> int:
    """Deal with every running job whose heartbeat is older than the timeout; returns how many.

    Heartbeats cannot be written while the database is unreachable, so their age counts only from when this
    process could reach it again: right after an outage nothing is stale yet, however old its heartbeat.
    """
    db = services.db
    if db.reachable_for_s() < heartbeat_timeout_s:
        return 0
    now = utcnow()
    cutoff = now - timedelta(seconds=heartbeat_timeout_s)
    with db.read() as session:
        stale = list(
            session.scalars(
                select(Job)
                .where(
                    Job.state == states.RUNNING,
                    Job.heartbeat_at < cutoff,
                    # A parent waiting for its children has no worker to lose.
                    or_(Job.fan_phase.is_(None), Job.fan_phase != fanout.WAITING),
                )
                .limit(200)
            )
        )
    handled = 0
    for job in stale:
        ended: Job | None = None
        if job.cancel_requested:
            ended = lifecycle.finish(
                services,
                job_id=job.id,
                attempt=job.attempt,
                state=states.CANCELLED,
                error={"code": "cancelled", "message": "cancelled; its worker vanished"},
            )
        elif (
            job.started_at and job.time_limit_s and job.started_at + timedelta(seconds=job.time_limit_s) < now
        ):
            ended = lifecycle.finish(
                services,
                job_id=job.id,
                attempt=job.attempt,
                state=states.FAILED,
                error={"code": "timeout", "message": f"ran past its time limit of {job.time_limit_s:g} s"},
            )
        elif job.attempt < job.max_attempts:
            lost = {
                "code": "worker_lost",
                "message": f"attempt {job.attempt} lost its worker ({job.worker}); re-queued",
            }
            if lifecycle.requeue(services, job, error=lost) is not None:
                handled += 1
                log.warning(
                    "reaper: job %s lost its worker %s; re-queued as attempt %d",
                    job.id,
                    job.worker,
                    job.attempt + 1,
                )
            continue
        else:
            ended = lifecycle.finish(
                services,
                job_id=job.id,
                attempt=job.attempt,
                state=states.FAILED,
                error={
                    "code": "worker_lost",
                    "message": f"its worker ({job.worker}) vanished on the last attempt ({job.attempt} of "
                    f"{job.max_attempts})",
                },
            )
        if ended is not None:
            handled += 1
            log.warning("reaper: job %s ended %s (%s)", job.id, ended.state, (ended.error or {}).get("code"))
    return handled


def purge_idempotency_keys(db: Database, *, max_age_s: float = 86400) -> None:
    with db.write() as session:
        session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - timedelta(seconds=max_age_s))
        )
