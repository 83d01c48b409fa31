"""How a media job that ends short leaves its asset (`media.builds.media_ended`), and one that stops between
its own change of the asset and the jobs that follow it (the swap of `media.builds.finish`, a poster).

The media jobs run in this process (tests/jobs' Engine: SQLite, a stub broker, the real runner and ffmpeg,
local storage), so a test can make a step fail at the very moment it wants.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from mediajobs.db.models import Job, Media
from mediajobs.errors import ProcessFailed
from mediajobs.jobs import lifecycle
from mediajobs.media import assets, images
from mediajobs.storage import for_process
from mediajobs.toolkit.hls import renditions
from tests.jobs.conftest import Engine
from tests.media.test_inplace import add, ended, media_of, process_job
from tests.toolkit.frames import ffmpeg


@pytest.fixture(scope="module")
def small_standard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of standard 360p H.264/AAC: its ladder is its own stream, cut whole and published before the
    stream is decoded once for damage (the last check of a ladder that encodes nothing)."""
    path = tmp_path_factory.mktemp("builds") / "small.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=12", "-f", "lavfi",
        "-i", "sine=frequency=300:sample_rate=48000:d=12", "-c:v", "libx264", "-preset", "ultrafast",
        "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", path,
    )  # fmt: skip
    return path


def uploaded(engine: Engine, source: Path, steps: list[str] | None = None) -> Media:
    steps = steps or ["hls", "thumbnail"]
    media = assets.new_media(source={"type": "upload"}, state=assets.PROCESSING, pipeline=steps)
    key = assets.original_key(media.id, source.name)
    for_process(engine.settings).put_file(key, source)
    size = source.stat().st_size
    media.original = {"key": key, "size": size, "content_type": "video/mp4", "filename": source.name}
    return add(engine, media)


def test_a_first_processing_that_fails_after_its_whole_stream_played_fails_the_asset_and_withdraws_it(
    engine: Engine, small_standard: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = uploaded(engine, small_standard)
    published: list[dict[str, Any] | None] = []

    def fail_the_last_check(*args: Any, **kwargs: Any) -> None:
        published.append(assets.get_media(engine.db, media.id).hls)
        # Any failure, not only damage ffmpeg's words say is damage: here one the worker does not know.
        raise ProcessFailed("ffmpeg exited with 1: [aac @ 0x5611] something no one has seen before")

    monkeypatch.setattr(renditions, "verify", fail_the_last_check)
    engine.submit("media.process", {"pipeline": ["hls", "thumbnail"]}, media_id=media.id)
    done = ended(engine, media.id)

    # The check ran on a stream that played whole (its one rung ready) and failed.
    assert published and published[0] is not None
    assert [v["ready"] for v in published[0]["variants"]] == [True]
    job = process_job(engine, media.id)
    assert (job.state, job.error["code"]) == ("failed", "process_failed"), job.error  # type: ignore[index]
    assert done.state == assets.FAILED, (done.hls, done.extra)
    assert done.error == job.error
    assert done.hls is None and done.playable_at is None and done.thumbnail is None
    stored = engine.settings.data_dir / "storage" / assets.prefix(media.id)
    assert not [p for p in stored.rglob("*") if p.is_file() and "original" not in p.parts]


FOLLOW_UPS = ("media.cleanup", "media.downloads", "media.storyboard")
EVERYTHING = ["hls", "thumbnail", "mp4", "audio", "storyboard"]


@contextlib.contextmanager
def first_follow_up_insert_fails(engine: Engine, error: Exception) -> Iterator[list[str]]:
    """The first INSERT of a follow-up job (cleanup, downloads, storyboard) raises `error`, at the database
    as it would: the swap's own write before it is whatever the code made of it. Yields the kinds refused."""
    refused: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if refused or not statement.lstrip().upper().startswith("INSERT INTO JOBS"):
            return
        kind = next((k for k in FOLLOW_UPS if k in str(parameters)), None)
        if kind is not None:
            refused.append(kind)
            raise error

    event.listen(engine.db.write_engine, "before_cursor_execute", before)
    try:
        yield refused
    finally:
        event.remove(engine.db.write_engine, "before_cursor_execute", before)


def disk_gone(statement: str = "INSERT INTO jobs") -> OperationalError:
    """What SQLAlchemy raises when SQLite's file cannot be written any more (a database that went away)."""
    return OperationalError(statement, None, sqlite3.OperationalError("disk I/O error"))


def ready_with_everything(engine: Engine, source: Path) -> Media:
    media = uploaded(engine, source, steps=EVERYTHING)
    engine.submit("media.process", {"pipeline": EVERYTHING}, media_id=media.id)
    done = ended(engine, media.id)
    assert done.state == assets.READY, done.error
    return whole(engine, done)


def whole(engine: Engine, media: Media) -> Media:
    """What a user checks of a ready asset: its stream, downloads and storyboard are all there, and the
    files of no other HLS version are left (superseded ones go after the grace)."""
    assert media.state == assets.READY and media.hls is not None, (media.state, media.error)
    root = engine.settings.data_dir / "storage" / assets.prefix(media.id)
    version = media.hls["path"].split("/", 1)[1]
    assert (root / media.hls["path"] / media.hls["master"]).is_file()
    assert [(d["type"], d["ready"]) for d in media.downloads] == [("mp4", True), ("audio", True)]
    for d in media.downloads:
        assert (root / d["path"]).is_file(), d
    assert media.storyboard is not None and media.storyboard["path"] == f"storyboard/{version}"
    for made in ("hls", "downloads", "storyboard"):
        assert sorted(p.name for p in (root / made).iterdir()) == [version], made
    return media


def reprocess_job(engine: Engine, media_id: str) -> Job:
    jobs = [engine.job(j) for j in assets.job_ids(engine.db, media_id)]
    found = [j for j in jobs if j.kind == "media.process" and j.params.get("reprocess")]
    assert len(found) == 1, found
    return found[0]


def settled(engine: Engine, media_id: str) -> Media:
    """Work (releasing retries, relaying the outbox) until none of the asset's jobs is left."""
    engine.work(lambda: not assets.unfinished_jobs(engine.db, media_id), relay=True, timeout_s=300)
    return media_of(engine, media_id)


def test_a_reprocess_whose_database_goes_away_as_it_swaps_in_completes_on_its_retry_with_every_output(
    engine: Engine, small_standard: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.settings, "hls_swap_grace_s", 0.0)
    before = ready_with_everything(engine, small_standard)
    params = {"pipeline": EVERYTHING, "reprocess": True}
    with first_follow_up_insert_fails(engine, disk_gone()) as refused:
        engine.submit("media.process", params, media_id=before.id)
        engine.work(lambda: bool(refused), timeout_s=300)
        job = reprocess_job(engine, before.id)
        engine.work(lambda: engine.job(job.id).attempt > 1 or engine.job(job.id).state != "running")
    assert refused == ["media.cleanup"]

    job = engine.job(job.id)
    assert job.error is not None and job.error["code"] == "database_unreachable", job.error
    after = settled(engine, before.id)
    job = engine.job(job.id)
    assert (job.state, job.attempt) == ("succeeded", 2), job.error
    assert after.hls is not None and after.hls["path"] != before.hls["path"]  # type: ignore[index]
    whole(engine, after)


def test_a_reprocess_that_crashes_as_it_swaps_in_leaves_the_asset_as_it_was_and_a_retry_completes_it(
    engine: Engine, small_standard: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.settings, "hls_swap_grace_s", 0.0)
    before = ready_with_everything(engine, small_standard)
    params = {"pipeline": EVERYTHING, "reprocess": True}
    with first_follow_up_insert_fails(engine, RuntimeError("the process crashed")) as refused:
        engine.submit("media.process", params, media_id=before.id)
        after = settled(engine, before.id)
    assert refused == ["media.cleanup"]

    job = reprocess_job(engine, before.id)
    assert job.state == "failed", job.state
    # Nothing of the swap happened: the same stream, downloads and storyboard, and no other version's files.
    assert (after.hls, after.downloads, after.storyboard) == (before.hls, before.downloads, before.storyboard)
    whole(engine, after)

    lifecycle.retry(engine.services, job.id)
    after = settled(engine, before.id)
    assert engine.job(job.id).state == "succeeded", engine.job(job.id).error
    assert after.hls is not None and after.hls["path"] != before.hls["path"]  # type: ignore[index]
    whole(engine, after)


def test_a_poster_whose_old_thumbnails_cleanup_cannot_be_made_is_not_set_and_its_retry_sets_it(
    engine: Engine, small_standard: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.settings, "hls_swap_grace_s", 0.0)
    before = ready_with_everything(engine, small_standard)
    assert before.thumbnail is not None
    root = engine.settings.data_dir / "storage" / assets.prefix(before.id)
    spec = images.poster(before, time=2.0)
    params = images.ImageParams(version=images.renderable(before), still=spec, poster=True)
    with first_follow_up_insert_fails(engine, RuntimeError("the process crashed")) as refused:
        job = engine.submit(images.KIND, params.model_dump(mode="json"), media_id=before.id)
        assert engine.run_to_end(job.id).state == "failed"
    assert refused == ["media.cleanup"]
    # Not set: the thumbnail it would replace is still shown, and still there.
    after = media_of(engine, before.id)
    assert (after.thumbnail, after.poster) == (before.thumbnail, before.poster)
    assert (root / before.thumbnail).is_file()

    lifecycle.retry(engine.services, job.id)
    after = settled(engine, before.id)
    assert engine.job(job.id).state == "succeeded", engine.job(job.id).error
    assert (after.thumbnail, after.poster) == (params.path, {"time": 2.0, "chosen": True})
    assert (root / params.path).is_file()
    assert not (root / before.thumbnail).exists()  # the one it replaced went after the grace
