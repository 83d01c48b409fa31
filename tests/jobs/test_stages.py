"""A finished job does not keep the stage it was working on: it says it is done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mediajobs.db.migrate import migrate
from mediajobs.db.session import Database
from mediajobs.jobs import states
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.registry import NoParams, job_kind
from tests.jobs.conftest import Engine
from tests.stacks import BACKENDS, database_url


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path, migrated_template: Path) -> Iterator[Engine]:
    """The engine on SQLite and on PostgreSQL: the final stage is one CASE in the terminal UPDATE."""
    url = None
    if request.param != "sqlite":
        url = database_url(request.param, tmp_path, request)
        schema = Database(url)
        migrate(schema)
        schema.dispose()
    made = Engine(tmp_path, migrated_template, url)
    yield made
    made.close()


@job_kind("stages.midway")
def midway(ctx: JobContext, params: NoParams) -> str:
    """Ends while its last stage still says it is at work, as media.analyze did ("Analyzing scenes…")."""
    ctx.progress(40, "Analyzing scenes, black, silence, freezes and loudness")
    return "found"


@job_kind("stages.final_word")
def final_word(ctx: JobContext, params: NoParams) -> str:
    """Says its own last word at 100 %."""
    ctx.progress(100, "Imported")
    return "ok"


@job_kind("stages.silent")
def silent(ctx: JobContext, params: NoParams) -> None:
    """Reports nothing at all."""


@job_kind("stages.failing")
def failing(ctx: JobContext, params: NoParams) -> None:
    """Fails while at work: its stage says where it was."""
    ctx.progress(30, "Transcoding 720p")
    raise ValueError("boom")


def test_a_job_that_ends_midway_through_a_stage_says_done_at_100_percent(engine: Engine) -> None:
    done = engine.run_to_end(engine.submit("stages.midway").id)
    assert (done.state, done.progress, done.stage, done.result) == (states.SUCCEEDED, 100.0, "Done", "found")


def test_a_last_stage_said_at_100_percent_is_kept(engine: Engine) -> None:
    done = engine.run_to_end(engine.submit("stages.final_word").id)
    assert (done.state, done.stage) == (states.SUCCEEDED, "Imported")


def test_a_job_that_said_nothing_says_done(engine: Engine) -> None:
    assert engine.run_to_end(engine.submit("stages.silent").id).stage == "Done"


def test_a_failed_job_keeps_the_stage_where_it_failed(engine: Engine) -> None:
    failed = engine.run_to_end(engine.submit("stages.failing").id)
    assert (failed.state, failed.stage) == (states.FAILED, "Transcoding 720p")
