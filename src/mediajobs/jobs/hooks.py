"""What the engine hands to the code it calls back, and the listeners of a job's end.

Every move of a job and every hook gets the process's `Services` (its database, settings and broker) from
whoever holds them (the API, the worker's runner, the maintenance loop) instead of looking them up. A job that
ends, in whichever process ended it, runs its kind's `on_end(job, services)` first, then every job-ended
listener: the layers above the engine register theirs when they are imported (webhooks emits its events so).
A hook that fails is logged and never stops the others nor the move that ended the job.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mediajobs.broker import Broker
from mediajobs.config import Settings
from mediajobs.db.models import Job
from mediajobs.db.session import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """What the engine runs with in one process: its database, its settings and its broker."""

    db: Database
    settings: Settings
    broker: Broker


EndHook = Callable[[Job, Services], None]
_job_ended: list[EndHook] = []


def end_hook(fn: Callable[..., Any]) -> EndHook:
    """`fn` as an `on_end(job, services)` hook; one written `on_end(job)` (the older form) still works."""
    try:
        positional = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):  # no signature to read (some builtins): call it as documented
        return fn
    if len(positional) != 1 or positional[0].kind == inspect.Parameter.VAR_POSITIONAL:
        return fn

    @functools.wraps(fn)
    def with_job_only(job: Job, services: Services) -> None:
        fn(job)

    return with_job_only


def on_job_ended(listener: EndHook) -> EndHook:
    """Register `listener(job, services)`, called for every job that ends, after its kind's own hook."""
    if listener not in _job_ended:
        _job_ended.append(listener)
    return listener


def job_ended(job: Job, services: Services, *, own: EndHook | None) -> None:
    """Run the kind's own hook (`own`), then every listener; failures are logged, never raised."""
    for hook in (own, *_job_ended) if own is not None else _job_ended:
        try:
            hook(job, services)
        except Exception:
            log.exception("end hook %s failed for job %s (%s)", _name(hook), job.id, job.kind)


def _name(hook: EndHook) -> str:
    return f"{getattr(hook, '__module__', '?')}.{getattr(hook, '__qualname__', repr(hook))}"
