"""How a media job that ends short leaves its asset (`media.builds.media_ended`).

The media jobs run in this process (tests/jobs' Engine: SQLite, a stub broker, the real runner and ffmpeg,
local storage), so a test can make a step fail at the very moment it wants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediajobs.db.models import Media
from mediajobs.errors import ProcessFailed
from mediajobs.media import assets
from mediajobs.storage import for_process
from mediajobs.toolkit.hls import renditions
from tests.jobs.conftest import Engine
from tests.media.test_inplace import add, ended, process_job
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


def uploaded(engine: Engine, source: Path) -> Media:
    steps = ["hls", "thumbnail"]
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
