"""Workers; `celery -A mediajobs.worker …` (Flower, inspect) finds the app here, built from the env."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Celery's app finder tries `mediajobs.worker.app` (a module here, which it skips), then `.celery`. Built
    # on first use only: importing `mediajobs.worker.runner` must not build an app from the environment.
    if name == "celery":
        from mediajobs.worker.app import get_celery

        return get_celery()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
