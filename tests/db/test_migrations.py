"""Upgrades keep recorded work runnable: rows written by the previous release still fit the kinds' models."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command

from mediajobs import bootstrap
from mediajobs.config import Settings
from mediajobs.db.migrate import alembic_config, migrate
from mediajobs.db.models import Job, Media
from mediajobs.db.session import get_db
from mediajobs.jobs.registry import registry
from tests.conftest import BACKENDS, database_url

REGIONS = [{"x": 0, "y": 0, "w": 10, "h": 10, "start": 0.0, "end": None, "style": "black"}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_operation_jobs_recorded_before_the_upgrade_still_validate_after_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = get_db(database_url(backend, tmp_path, request))
    command.upgrade(alembic_config(db), "0005")
    source_id, derived_id = str(uuid.uuid4()), str(uuid.uuid4())
    old_params = {
        "media.mask": {"source_id": source_id, "regions": REGIONS},
        "media.remove_frames": {"source_id": source_id, "ranges": [{"start": 1.0, "end": 2.0}]},
    }
    with db.write() as session:
        session.add(Media(id=source_id, state="ready"))
        session.add(Media(id=derived_id, state="pending", parent_id=source_id))
        for kind, params in old_params.items():
            job = Job(id=str(uuid.uuid4()), kind=kind, state="queued", params=params, media_id=derived_id)
            session.add(job)

    migrate(db)
    bootstrap.load_kinds(Settings())
    with db.read() as session:
        upgraded = {job.kind: job.params for job in session.query(Job)}
    for kind, params in old_params.items():
        body = {k: v for k, v in params.items() if k != "source_id"}
        assert upgraded[kind] == body
        registry.get(kind).params.model_validate(upgraded[kind])  # what the worker does before running it

    command.downgrade(alembic_config(db), "0005")
    with db.read() as session:
        assert {job.kind: job.params for job in session.query(Job)} == old_params
