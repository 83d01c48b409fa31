"""The worker's Celery app: the broker's app for these Settings, with the task that runs a job registered."""

from __future__ import annotations

from celery import Celery

from mediajobs import bootstrap
from mediajobs.broker import TASK_NAME
from mediajobs.config import Settings, get_settings
from mediajobs.worker.runner import run_job

__all__ = ["TASK_NAME", "create_celery", "get_celery"]


def _run(job_id: str, attempt: int) -> None:
    run_job(job_id, attempt)


def create_celery(settings: Settings) -> Celery:
    app = bootstrap.broker(settings).celery
    # Registering the same function under the same name again is a no-op, so this may be called freely.
    app.task(name=TASK_NAME, ignore_result=True)(_run)
    return app


def get_celery() -> Celery:
    """The app of the process's own Settings, for entry points (`mediajobs worker`, `celery -A`, doctor)."""
    return create_celery(get_settings())
