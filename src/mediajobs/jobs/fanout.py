"""Fan-out and fan-in rows: a job starts child jobs and ends once they all have, holding no worker meanwhile.

A handler returns `ctx.fan_out([...])` (a `FanOut`). Its worker then moves the job, in the transaction that
inserts the children, to a parent that waits: still `running` in the contract, with no worker and no heartbeat
(`fan_phase = "waiting"`, which the reaper skips), and publishes the children. Each child's end is taken up by
`lifecycle`: a failed child fails the parent with its code; once all have succeeded the parent succeeds, or,
with `then`, is queued again as a new attempt that uses none up to run that kind's handler (the join,
`fan_phase = "joining"`). The moves here (`wait`, `to_join`, `retry`) are conditional UPDATEs like those of
`rows`, and like them called by `lifecycle` alone; the rest reads.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from mediajobs.db.models import Job, utcnow
from mediajobs.db.session import Database
from mediajobs.errors import Conflict
from mediajobs.jobs import rows, states
from mediajobs.jobs.registry import registry

WAITING = "waiting"
JOINING = "joining"
# Up to this many children, each child's end records its parent's progress (read by event streams and
# webhooks; the API computes it live); past it that write would cost more than it tells.
PROGRESS_WRITES_UP_TO = 1000


@dataclass(frozen=True)
class Child:
    """One child job: its kind, params, and its weight in the parent's progress."""

    kind: str
    params: dict[str, Any]
    weight: float = 1.0


@dataclass(frozen=True)
class FanOut:
    """Returned by a handler (made by `ctx.fan_out`): wait for these children, then run `then` or succeed."""

    children: tuple[Child, ...]
    then: str | None = None
    # The slice of the parent's 0-100 % the children fill; its join (if any) fills the rest up to 100.
    span: tuple[float, float] = (0.0, 100.0)


# Children's progress is written every 0.5 s at most: a pace over less than this is mostly that lag.
PACE_AFTER_S = 3.0
# How far behind the latest write another running child's last one can be for its pace to fill the gap.
WRITE_LAG_S = 1.0
# A worker that ended a child this recently (and runs none of the others) is taking the next one.
HANDOVER_S = 2.0
# How many of the children that ended last tell what a whole child takes.
ENDED_READ = 50


@dataclass(frozen=True)
class Summary:
    """A parent's children: counts by state (with "total") and their weighted progress."""

    counts: dict[str, int]
    progress: float
    # When the first of them started (the children's work began; None before any has), and the last time
    # any of them wrote its progress or ended (what `progress` is as of).
    since: datetime | None = None
    as_of: datetime | None = None
    # Of `progress`, what the running children have made since each last wrote its own (at its own pace) up
    # to `as_of`: they write in turn, so at `as_of` all but one are a fraction of a write interval behind.
    unwritten: float = 0.0
    # How long the children still need as of `as_of`, those waiting scheduled on the workers that run the
    # others (see `_left`); None while no running child has said how long it has left, nor any ended.
    left: float | None = None


def summaries(db: Database, parent_ids: Iterable[str]) -> dict[str, Summary]:
    """The children summary of each of these parents, in one query."""
    ids = list(parent_ids)
    if not ids:
        return {}
    query = (
        select(
            Job.parent_id,
            Job.state,
            func.count(),
            func.sum(Job.weight * Job.progress),
            func.sum(Job.weight),
            func.min(Job.started_at),
            func.max(Job.updated_at),
        )
        .where(Job.parent_id.in_(ids))
        .group_by(Job.parent_id, Job.state)
    )
    counts: dict[str, dict[str, int]] = {}
    weighted: dict[str, list[float]] = {}
    since: dict[str, datetime] = {}
    as_of: dict[str, datetime] = {}
    with db.read() as session:
        for parent, state, n, done, weights, first, last in session.execute(query).tuples():
            parent_id = str(parent)
            counts.setdefault(parent_id, {"total": 0})[state] = int(n)
            counts[parent_id]["total"] += int(n)
            acc = weighted.setdefault(parent_id, [0.0, 0.0])
            acc[0] += float(done or 0.0)
            acc[1] += float(weights or 0.0)
            if first is not None and (parent_id not in since or first < since[parent_id]):
                since[parent_id] = first
            if last is not None and (parent_id not in as_of or last > as_of[parent_id]):
                as_of[parent_id] = last
    running = _running(db, ids, as_of, {pid: w[1] for pid, w in weighted.items()})
    return {
        pid: Summary(
            counts[pid],
            round(w[0] / w[1], 2) if w[1] else 0.0,
            since.get(pid),
            as_of.get(pid),
            *running.get(pid, (0.0, None)),
        )
        for pid, w in weighted.items()
    }


def _running(
    db: Database, ids: list[str], as_of: dict[str, datetime], weights: dict[str, float]
) -> dict[str, tuple[float, float | None]]:
    """Per parent, of its running children: the weighted progress they made between their last write and
    `as_of`, and how long the children still need (`Summary.left`)."""
    query = select(
        Job.parent_id, Job.weight, Job.progress, Job.started_at, Job.updated_at, Job.eta_seconds, Job.worker
    ).where(Job.parent_id.in_(ids), Job.state == states.RUNNING)
    unwritten: dict[str, float] = {}
    running: dict[str, list[_Working]] = {}
    with db.read() as session:
        for parent, weight, progress, started, updated, eta, worker in session.execute(query).tuples():
            parent_id = str(parent)
            last = as_of.get(parent_id)
            if started is None or updated is None or last is None or not weights.get(parent_id):
                continue
            worked = (updated - started).total_seconds()
            behind = (last - updated).total_seconds()
            # A child's own pace needs a few seconds of its work (its first percent comes at once, and an
            # encode starts slower than it goes on), and it is behind by a write interval at most; a child
            # quiet for longer is not assumed to be working.
            says = eta is not None and worked >= PACE_AFTER_S
            says_left = max(0.0, eta - max(0.0, behind)) if eta is not None and says else None
            working = _Working(float(weight), worked + behind, says_left, worker)
            running.setdefault(parent_id, []).append(working)
            if worked < PACE_AFTER_S or progress <= 0 or not 0 < behind <= WRITE_LAG_S:
                continue
            made = min(100.0 - progress, progress * behind / worked)
            unwritten[parent_id] = unwritten.get(parent_id, 0.0) + weight * made / weights[parent_id]
    left = _left(db, running, as_of)
    return {pid: (unwritten.get(pid, 0.0), left.get(pid)) for pid in set(unwritten) | set(left)}


@dataclass(frozen=True)
class _Working:
    weight: float
    worked: float  # seconds since it started, as of `as_of`
    left: float | None  # what it says it has left (None while it has not worked long enough to say)
    worker: str | None


def _left(db: Database, running: dict[str, list[_Working]], as_of: dict[str, datetime]) -> dict[str, float]:
    """Per parent with running children: how long its children still need, as of its `as_of`.

    Each running child takes what it says it has left: its own pace counts from its first percent, after
    it started up. The children waiting for a worker take, each, what a whole child took per weight (those
    that ended; before any has, what the running ones took and say they have left), start-up included, on
    the worker that frees up first: those running them now, and one that ended a child just before (it is
    taking the next; counted as running none, the ETA jumped by a whole child at each handover). The pace
    of all the children together counted each one's start-up as slow work, early in a run a large share
    of it (a chunked ladder's ETA read 10 % of the run long at its first tenth), and missed a last child
    running alone.
    """
    ids = list(running)
    if not ids:
        return {}
    waiting = (
        select(Job.parent_id, func.count(), func.sum(Job.weight))
        .where(Job.parent_id.in_(ids), Job.state.in_((states.QUEUED, states.RETRYING)))
        .group_by(Job.parent_id)
    )
    queued: dict[str, tuple[int, float]] = {}
    took: dict[str, list[float]] = {}  # seconds and weight of the children that ended last
    handing: dict[str, set[str]] = {}  # workers that ended a child within HANDOVER_S of `as_of`
    with db.read() as session:
        for parent, n, weight in session.execute(waiting).tuples():
            queued[str(parent)] = (int(n), float(weight or 0.0))
        for pid in ids:  # the last ENDED_READ of each (a parent may have thousands of children)
            ended = (
                select(Job.weight, Job.started_at, Job.finished_at, Job.worker)
                .where(Job.parent_id == pid, Job.state == states.SUCCEEDED, Job.started_at.is_not(None))
                .order_by(Job.finished_at.desc())
                .limit(ENDED_READ)
            )
            for weight, started, finished, worker in session.execute(ended).tuples():
                if finished is not None and started is not None and finished >= started:
                    acc = took.setdefault(pid, [0.0, 0.0])
                    acc[0] += (finished - started).total_seconds()
                    acc[1] += float(weight)
                    if worker and (as_of[pid] - finished).total_seconds() <= HANDOVER_S:
                        handing.setdefault(pid, set()).add(worker)
    found: dict[str, float] = {}
    for pid, children in running.items():
        said = [c for c in children if c.left is not None]
        seconds, weight = took.get(pid) or [sum(c.worked + (c.left or 0.0) for c in said), 0.0]
        weight = weight or sum(c.weight for c in said)
        if not weight:
            continue
        per_weight = seconds / weight
        # A child that has not said yet: what a whole one took, less what it has worked.
        free = [max(0.0, per_weight * c.weight - c.worked) if c.left is None else c.left for c in children]
        n, total = queued.get(pid, (0, 0.0))
        if n:
            free += [0.0] * len(handing.get(pid, set()) - {c.worker for c in children})
        heapq.heapify(free)
        for _ in range(n):
            heapq.heappush(free, heapq.heappop(free) + per_weight * total / n)
        found[pid] = max(free)
    return found


def waiting_progress(parent: Job, children: Summary) -> tuple[float, float | None]:
    """(progress, eta_seconds) of a waiting parent whose children are `children.progress` % done.

    The children fill the parent's slice [fan_from, fan_to]. The ETA extrapolates the pace of that slice from
    when the first child started to when their progress was last written (the join's share of the scale
    taken at that pace too): the parent's own first step (a probe, a copied top rung) is reported as a few
    percent whatever it took, and a pace since the attempt's start would carry it. None until a child has
    started and the children have worked PACE_AFTER_S and made a point (while they wait in the queue too).
    What running children made since they last wrote counts (`Summary.unwritten`). Once a running child
    says how long it has left (or a child ended), the ETA is what the children still need scheduled on the
    workers running them (`Summary.left`) and the join's share at the pace.
    """
    low, high = parent.fan_from or 0.0, 100.0 if parent.fan_to is None else parent.fan_to
    progress = round(low + (high - low) * children.progress / 100.0, 2)
    eta = None
    if children.since is not None:
        since = children.since
        if parent.started_at is not None and parent.started_at > since:
            since = parent.started_at  # a retried parent: its children's pace is this attempt's
        as_of = children.as_of or utcnow()
        spent = (as_of - since).total_seconds()
        now = progress + (high - low) * children.unwritten / 100.0  # as of `as_of`, every child's share
        made = now - low
        if spent >= PACE_AFTER_S and made >= 1.0:
            eta = round(max(0.0, (100.0 - now) * spent / made), 1)
            if children.left is not None:
                # What the children say they have left, scheduled; the join's share at their pace.
                eta = round(children.left + (100.0 - high) * spent / made, 1)
    return progress, eta


def joining_progress(parent: Job) -> float:
    """A join's own 0-100 % shown on the rest of its parent's scale, after the children's slice."""
    low = 0.0 if parent.fan_to is None else parent.fan_to
    return round(low + (100.0 - low) * parent.progress / 100.0, 2)


def wait(db: Database, *, job_id: str, attempt: int, fan: FanOut) -> tuple[Job, list[Job]] | None:
    """running (this attempt, no cancel asked) → waiting, its children inserted in the same transaction.

    None when the job is not running this attempt any more or a cancel came: no child exists then.
    """
    now = utcnow()
    with db.write() as session:
        moved = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.state == states.RUNNING,
                Job.attempt == attempt,
                Job.cancel_requested.is_(False),
                Job.fan_phase.is_(None),  # a retry after a commit whose answer was lost adds no children
            )
            .values(
                fan_phase=WAITING,
                children_total=len(fan.children),
                join_kind=fan.then,
                worker=None,
                heartbeat_at=None,
                progress=fan.span[0],
                fan_from=fan.span[0],
                fan_to=fan.span[1],
                eta_seconds=None,
                stage=f"Waiting for {len(fan.children)} child jobs",
                updated_at=now,
            )
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            return None
        parent = session.get(Job, job_id)
        assert parent is not None
        children = []
        for position, child in enumerate(fan.children):
            job = rows.new_job(
                kind=registry.get(child.kind),
                params=child.params,
                priority=parent.priority,
                media_id=parent.media_id,
            )
            # A microsecond apart, so that the children list (and join) in the order they were given.
            job.created_at = job.updated_at = now + timedelta(microseconds=position)
            job.parent_id, job.weight = parent.id, child.weight
            children.append(job)
        session.add_all(children)
        session.flush()
        session.expunge_all()
    return parent, children


def to_join(db: Database, parent: Job) -> Job | None:
    """waiting → queued as a new attempt that uses none up, to run its `then` kind; None if it moved."""
    join = registry.get(parent.join_kind) if parent.join_kind and parent.join_kind in registry else None
    with db.write() as session:
        moved = session.execute(
            update(Job)
            .where(
                Job.id == parent.id,
                Job.state == states.RUNNING,
                Job.attempt == parent.attempt,
                Job.fan_phase == WAITING,
                Job.cancel_requested.is_(False),
            )
            .values(
                state=states.QUEUED,
                fan_phase=JOINING,
                attempt=parent.attempt + 1,
                max_attempts=Job.max_attempts + 1,
                queue=join.queue if join is not None else parent.queue,
                published_at=utcnow(),
                progress=0.0,
                stage=f"Joining {parent.children_total} child jobs",
                started_at=None,
                updated_at=utcnow(),
            )
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            return None
        return session.get(Job, parent.id)


def any_unfinished(db: Database, parent_id: str) -> bool:
    """Whether a child of this parent has not ended yet (one index probe, however many children)."""
    with db.read() as session:
        found = session.scalar(
            select(Job.id).where(Job.parent_id == parent_id, Job.state.in_(tuple(states.UNFINISHED))).limit(1)
        )
    return found is not None


def unfinished_children(db: Database, parent_id: str) -> list[str]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Job.id).where(Job.parent_id == parent_id, Job.state.in_(tuple(states.UNFINISHED)))
            )
        )


def first_failed_child(db: Database, parent_id: str) -> Job | None:
    """The child that failed first (or was cancelled on its own), whose error the parent's failure carries."""
    with db.read() as session:
        return session.scalars(
            select(Job)
            .where(Job.parent_id == parent_id, Job.state.in_((states.FAILED, states.CANCELLED)))
            .order_by(Job.finished_at, Job.id)
            .limit(1)
        ).first()


def child_results(db: Database, parent_id: str) -> list[Any]:
    """The results of a parent's children, in the order they were given to fan_out."""
    with db.read() as session:
        return list(
            session.scalars(
                select(Job.result).where(Job.parent_id == parent_id).order_by(Job.created_at, Job.id)
            )
        )


def _reset(attempt: Any, max_attempts: Any) -> dict[str, Any]:
    """The values of a retry: a new attempt, with at least that one allowed, nothing of the last one kept."""
    return {
        "attempt": attempt + 1,
        "max_attempts": case((max_attempts > attempt, max_attempts), else_=attempt + 1),
        "progress": 0.0,
        "eta_seconds": None,
        "result": None,
        "error": None,
        "cancel_requested": False,
        "started_at": None,
        "finished_at": None,
        "run_after": None,
        "worker": None,
        "heartbeat_at": None,
        "updated_at": utcnow(),
    }


def retry(session: Session, parent: Job) -> list[Job]:
    """A failed or cancelled parent waits again for its children that did not succeed, re-queued here.

    Returns the re-queued children (claimed for publishing); none when they had all succeeded (the join
    failed): then the parent is queued to join again. Raises Conflict when the parent moved meanwhile.
    """
    again = (Job.parent_id == parent.id, Job.state.in_(tuple(states.RETRYABLE)))
    pending = session.scalar(select(func.count()).where(*again)) or 0
    parent_values = _reset(Job.attempt, Job.max_attempts)
    if pending:
        parent_values.update(
            state=states.RUNNING, fan_phase=WAITING, stage=f"Waiting for {pending} child jobs run again"
        )
    else:
        parent_values.update(state=states.QUEUED, fan_phase=JOINING, published_at=utcnow(), stage="")
    moved = session.execute(
        update(Job)
        .where(Job.id == parent.id, Job.state == parent.state, Job.attempt == parent.attempt)
        .values(**parent_values)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"job {parent.id} changed while retrying it; look at it again")
    if not pending:
        return []
    rows = session.execute(
        update(Job)
        .where(*again)
        .values(state=states.QUEUED, stage="", published_at=utcnow(), **_reset(Job.attempt, Job.max_attempts))
        .returning(Job.id, Job.kind, Job.attempt, Job.queue, Job.priority, Job.time_limit_s)
        .execution_options(synchronize_session=False)
    ).all()
    return [Job(**row._mapping) for row in rows]
