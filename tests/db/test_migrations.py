"""Upgrades keep recorded work runnable: rows written by the previous release still fit the kinds' models."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from mediajobs import bootstrap
from mediajobs.api import idempotency
from mediajobs.config import Settings
from mediajobs.db.migrate import alembic_config, migrate
from mediajobs.db.models import IdempotencyKey, Job, Media, Upload, UTCDateTime, utcnow
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_assets_recorded_before_titles_get_one_from_their_file_page_or_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = get_db(database_url(backend, tmp_path, request))
    command.upgrade(alembic_config(db), "0008")
    recorded = {
        "upload": ({"type": "upload", "filename": "holiday.mp4"}, {"filename": "holiday.mp4"}),
        "import": ({"type": "url", "url": "https://x.example/a.mp4", "title": "Big Buck Bunny"}, None),
        "pending": ({"type": "url", "url": "https://x.example/talks/Keynote%201.webm"}, None),
        "derived": ({"type": "mask", "parent_id": "7c1e2f0a-9d3b"}, None),
        "nameless": ({"type": "upload", "filename": None}, None),
    }
    with db.write() as session:
        for name, (source, original) in recorded.items():
            session.add(Media(id=name, state="ready", source=source, original=original))

    migrate(db)

    with db.read() as session:
        found = {media.id: (media.title, media.title_search) for media in session.query(Media)}
    assert found == {
        "upload": ("holiday", "holiday"),
        "import": ("Big Buck Bunny", "big buck bunny"),
        "pending": ("Keynote 1", "keynote 1"),
        "derived": ("mask of 7c1e2f0a", "mask of 7c1e2f0a"),
        "nameless": ("Untitled", "untitled"),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_uploads_hold_offsets_past_4_gib_and_downgrade_away(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = get_db(database_url(backend, tmp_path, request))
    migrate(db)
    big = 9 * 1024**3 + 7  # past what a 32-bit integer column holds
    now = utcnow()
    with db.write() as session:
        session.add(
            Upload(
                id=str(uuid.uuid4()),
                media_id=str(uuid.uuid4()),
                state="uploading",
                length=big,
                offset=big - 1,
                key="media/x/original/a.mp4",
                partial={"size": big - 1},
                meta={},
                created_at=now,
                updated_at=now,
                expires_at=now,
            )
        )
    with db.read() as session:
        assert [(u.length, u.offset) for u in session.query(Upload)] == [(big, big - 1)]
    command.downgrade(alembic_config(db), "0009")
    command.upgrade(alembic_config(db), "head")
    with db.read() as session:
        assert session.query(Upload).count() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_idempotency_keys_recorded_before_fingerprints_answer_any_payload_after_the_upgrade(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = get_db(database_url(backend, tmp_path, request))
    command.upgrade(alembic_config(db), "0010")
    keys = sa.table(
        "idempotency_keys",
        sa.column("scope"),
        sa.column("key"),
        sa.column("status_code"),
        sa.column("body", sa.JSON()),
        sa.column("location"),
        sa.column("created_at", UTCDateTime()),
    )
    answer = {"id": "job-1", "state": "queued"}
    with db.write() as session:
        session.execute(
            keys.insert().values(
                scope="POST /api/v1/jobs",
                key="k1",
                status_code=202,
                body=answer,
                location="/api/v1/jobs/job-1",
                created_at=utcnow(),
            )
        )

    migrate(db)
    with db.read() as session:
        assert [(row.key, row.fingerprint) for row in session.query(IdempotencyKey)] == [("k1", None)]
    # A key recorded before payloads had fingerprints answers whatever repeats it, as it did before.
    for payload in ({"kind": "test.add"}, {"kind": "something else"}):
        used = idempotency.Use("POST /api/v1/jobs", "k1", idempotency.fingerprint(payload))
        replayed = idempotency.replay(db, used)
        assert replayed is not None and json.loads(replayed.body) == answer
        assert replayed.headers["location"] == "/api/v1/jobs/job-1"

    command.downgrade(alembic_config(db), "0010")
    with db.read() as session:
        assert session.execute(sa.select(keys.c.key)).scalars().all() == ["k1"]
