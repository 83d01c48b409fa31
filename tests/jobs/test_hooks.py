"""End hooks and listeners get the job and the Services of the process that ended it; none breaks a move."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs.db.models import Job
from mediajobs.errors import UnsupportedMedia
from mediajobs.jobs import hooks, lifecycle
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.registry import NoParams, job_kind, registry
from mediajobs.media import assets, events
from mediajobs.media.events import MediaEvent
from tests.jobs.conftest import Engine

ENDED: list[tuple[str, str, Services]] = []


def _ended_with_services(job: Job, services: Services) -> None:
    ENDED.append((job.id, job.state, services))


@job_kind("hooks.two_arguments", on_end=_ended_with_services)
def two_arguments(ctx: JobContext, params: NoParams) -> None:
    """Fails with a permanent error; its hook takes (job, services)."""
    raise UnsupportedMedia("not a video")


def _legacy_end(job: Job) -> None:
    ENDED.append((job.id, job.state, None))  # type: ignore[arg-type]


@job_kind("hooks.one_argument", on_end=_legacy_end)
def one_argument(ctx: JobContext, params: NoParams) -> str:
    """Succeeds; its hook is written the older way, `on_end(job)`."""
    return "done"


def _failing_end(job: Job, services: Services) -> None:
    raise RuntimeError("a bug in the hook")


@job_kind("hooks.failing_hook", on_end=_failing_end)
def failing_hook(ctx: JobContext, params: NoParams) -> str:
    """Succeeds; its hook raises."""
    return "done"


def ended(job_id: str) -> list[tuple[str, Services | None]]:
    return [(state, services) for found, state, services in ENDED if found == job_id]


def test_an_end_hook_gets_the_job_as_it_ended_and_the_services_of_the_process_that_ended_it(
    engine: Engine,
) -> None:
    job = engine.submit("hooks.two_arguments")

    done = engine.run_to_end(job.id)

    assert done.state == "failed" and done.error["code"] == "unsupported_media"
    assert ended(job.id) == [("failed", engine.services)]


def test_an_end_hook_written_with_the_job_alone_still_runs_once(engine: Engine) -> None:
    assert registry.get("hooks.one_argument").on_end is not _legacy_end  # wrapped to the new form
    job = engine.submit("hooks.one_argument")

    engine.run_to_end(job.id)

    assert ended(job.id) == [("succeeded", None)]


def test_listeners_run_after_the_kinds_hook_and_a_failing_hook_stops_neither_them_nor_the_move(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[tuple[str, str, Services]] = []
    monkeypatch.setattr(hooks, "_job_ended", [])
    hooks.on_job_ended(lambda job, services: heard.append((job.id, job.state, services)))
    failing = engine.submit("hooks.failing_hook")
    hooked = engine.submit("hooks.two_arguments")

    assert engine.run_to_end(failing.id).state == "succeeded"
    lifecycle.cancel(engine.services, hooked.id)  # queued: ends at once, here

    assert heard == [(failing.id, "succeeded", engine.services), (hooked.id, "cancelled", engine.services)]
    assert ended(hooked.id) == [("cancelled", engine.services)]  # the kind's hook ran before the listener


def test_an_asset_moved_to_ready_or_failed_fires_its_event_once_with_the_services(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[tuple[MediaEvent, Services]] = []
    monkeypatch.setattr(events, "_listeners", [])
    events.on_media_event(lambda event, services: heard.append((event, services)))
    ready, failed = assets.new_media(source={"type": "upload"}), assets.new_media(source={"type": "upload"})
    with engine.db.write() as session:
        session.add_all([ready, failed])

    processing = (assets.PROCESSING,)
    assert assets.update_media(engine.services, ready.id, state=assets.PROCESSING)
    assert assets.update_media(engine.services, ready.id, only_from=processing, state=assets.READY)
    assert not assets.update_media(engine.services, ready.id, only_from=processing, state=assets.READY)
    assert assets.update_media(engine.services, failed.id, state=assets.FAILED, error={"code": "x"})

    assert heard == [
        (MediaEvent(events.READY, ready.id), engine.services),
        (MediaEvent(events.FAILED, failed.id), engine.services),
    ]


def test_deleting_an_asset_fires_media_deleted_with_its_record_as_it_was(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    heard: list[MediaEvent] = []
    monkeypatch.setattr(events, "_listeners", [])
    events.on_media_event(lambda event, services: heard.append(event))
    media = assets.new_media(source={"type": "upload"}, state=assets.READY)
    with engine.db.write() as session:
        session.add(media)
    delete = engine.submit("media.delete", media_id=media.id)

    assert engine.run_to_end(delete.id).state == "succeeded"

    assert [(e.type, e.media_id, e.media.state if e.media else None) for e in heard] == [
        (events.DELETED, media.id, assets.READY)
    ]
    assert assets.find_media(engine.db, media.id) is None
