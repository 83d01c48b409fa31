"""A derived asset's ladder is built from its parent's: untouched segments copied, the rest encoded, every
rung showing exactly the frames a full re-encode would, in order (issue 21 item 3).

The media jobs run in this process (tests/jobs' Engine: SQLite, a stub broker, the real runner and ffmpeg,
local storage), so a test can make the parent's files go away at the very moment it wants.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mediajobs.db.models import Job, Media
from mediajobs.errors import ProcessFailed
from mediajobs.media import assets, faststart, inplace, operations
from mediajobs.media.kinds.operations import _from_parent
from mediajobs.storage import for_process
from mediajobs.toolkit.hls import tsshift
from mediajobs.toolkit.hls.playlists import parse_media_playlist
from mediajobs.toolkit.hls.reuse import Edit
from mediajobs.toolkit.smart.render import RenderReport
from tests.jobs.conftest import Engine
from tests.toolkit import hlscheck
from tests.toolkit.frames import ffmpeg, gray_frames
from tests.toolkit.test_ladder import check_ladder

# The smallest source whose ladder has two rungs (480p, copied, and 360p) and four 4 s segments: enough for
# every edit below to leave segments to copy beside the ones it encodes.
W, H, FPS, SECONDS = 640, 480, 25, 16
BAND = 32  # the index band's height at the source's size; bit k is the box at x = 32k


def indexed_source(path: Path) -> Path:
    """2 s closed GOPs with B-frames (a standard source: its stream is the top rung), each frame showing its
    index in binary in a band over the picture, with a tone."""
    bits = ",".join(
        f"drawbox=x={32 * k}:y=0:w=32:h={BAND}:color=white:t=fill:enable='mod(floor(n/{1 << k}),2)'"
        for k in range(10)
    )
    video = f"testsrc2=s={W}x{H}:r={FPS}:d={SECONDS},drawbox=x=0:y=0:w={W}:h={BAND}:color=black:t=fill,{bits}"
    ffmpeg(
        "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=48000:d={SECONDS}",
        "-c:v", "libx264", "-preset", "veryfast",
        "-x264-params", "keyint=50:min-keyint=50:scenecut=0:bframes=2",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", str(SECONDS), path,
    )  # fmt: skip
    return path


def shown(path: Path, width: int, height: int) -> list[int]:
    """The index each frame of `path` shows, in order (read where the band is, scaled to the picture)."""
    frames = gray_frames(path, width, height)
    row = round(BAND / 2 * height / H)
    columns = [round((32 * k + 16) * width / W) for k in range(10)]
    bits = frames[:, row, columns] > 128
    return [int(v) for v in (bits * (1 << np.arange(10))).sum(axis=1)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return indexed_source(tmp_path_factory.mktemp("inplace") / "indexed.mp4")


@pytest.fixture(scope="module")
def parent(engine: Engine, source: Path) -> Media:
    """A ready parent the tests that leave it as it is derive from; a test that deletes or reprocesses its
    parent makes its own (`ready_parent`)."""
    return ready_parent(engine, source)


def add(engine: Engine, media: Media) -> Media:
    with engine.db.write() as session:
        session.add(media)
    return media


def media_of(engine: Engine, media_id: str) -> Media:
    found = assets.find_media(engine.db, media_id)
    assert found is not None
    return found


def ended(engine: Engine, media_id: str) -> Media:
    """Work until the asset is ready or failed and none of its jobs is left."""

    def done() -> bool:
        media = media_of(engine, media_id)
        over = media.state in (assets.READY, assets.FAILED)
        return over and not assets.unfinished_jobs(engine.db, media_id)

    engine.work(done, timeout_s=300)
    return media_of(engine, media_id)


def ready_parent(engine: Engine, source: Path) -> Media:
    parent = assets.new_media(source={"type": "upload"}, pipeline=["hls"])
    key = assets.original_key(parent.id, "indexed.mp4")
    for_process(engine.settings).put_file(key, source)
    size = source.stat().st_size
    parent.original = {"key": key, "size": size, "content_type": "video/mp4", "filename": "indexed.mp4"}
    add(engine, parent)
    engine.submit("media.process", {"pipeline": ["hls"]}, media_id=parent.id)
    done = ended(engine, parent.id)
    assert done.state == assets.READY, done.error
    return done


def derive(engine: Engine, parent: Media, kind: str, body: dict[str, Any]) -> Media:
    model = {"media.remove_frames": operations.RemoveFramesCreate, "media.mask": operations.MaskCreate,
             "media.clip": operations.ClipCreate}[kind]  # fmt: skip
    params = model.model_validate({**body, "pipeline": ["hls"]})
    derived = add(engine, operations.derive(engine.db, parent.id, params))
    engine.submit(kind, params.model_dump(mode="json"), media_id=derived.id)
    return ended(engine, derived.id)


def process_job(engine: Engine, media_id: str) -> Job:
    jobs = [engine.job(j) for j in assets.job_ids(engine.db, media_id)]
    found = [j for j in jobs if j.kind == "media.process"]
    assert len(found) == 1, found
    return found[0]


def stored(engine: Engine, media: Media) -> Path:
    assert media.hls is not None
    return engine.settings.data_dir / "storage" / assets.prefix(media.id) / media.hls["path"]


def assert_every_rung_shows(engine: Engine, media: Media, expected: list[int], tmp: Path) -> None:
    """Every rendition of the asset's ladder, read as its playlist lists it, shows exactly `expected`."""
    out = stored(engine, media)
    for name, rendition in hlscheck.renditions(out).items():
        if name == "audio":
            continue
        joined = hlscheck.joined(rendition, tmp)
        variant = next(v for v in media.hls["variants"] if v["path"].startswith(f"{name}/"))  # type: ignore[index]
        assert shown(joined, variant["width"], variant["height"]) == expected, name


def kept(removed: list[tuple[int, int]], frames: int = SECONDS * FPS) -> list[int]:
    return [p for p in range(frames) if not any(a <= p < b for a, b in removed)]


def test_a_removal_copies_the_parents_untouched_segments_into_every_rung_and_encodes_only_the_cuts(
    engine: Engine, parent: Media, tmp_path: Path
) -> None:
    ranges = [{"start": 5.1, "end": 6.6}, {"start": 13.3, "end": 14.8}]
    derived = derive(engine, parent, "media.remove_frames", {"ranges": ranges})

    assert derived.state == assets.READY, derived.error
    note = process_job(engine, derived.id).result["from_parent"]  # type: ignore[index]
    assert note["built"] == "from_parent", note
    # The parent's segments start at 0, 4, 8 and 12 s: the cuts touch two of the four; every rung holds the
    # parent's other two, moved in time.
    assert (note["copied_segments"], note["encoded_segments"]) == (2, 2), note
    removed = [(128, 165), (333, 370)]  # frames whose time is in [5.1, 6.6) and [13.3, 14.8)
    assert_every_rung_shows(engine, derived, kept(removed), tmp_path)
    original = engine.settings.data_dir / "storage" / derived.original["key"]  # type: ignore[index]
    check_ladder(stored(engine, derived), original, tmp_path)


def test_a_mask_copies_every_segment_it_does_not_show_in(
    engine: Engine, parent: Media, tmp_path: Path
) -> None:
    region = {"x": 400, "y": 200, "w": 200, "h": 150, "start": 9.0, "end": 14.0, "style": "black"}
    derived = derive(engine, parent, "media.mask", {"regions": [region]})

    assert derived.state == assets.READY, derived.error
    note = process_job(engine, derived.id).result["from_parent"]  # type: ignore[index]
    assert note["built"] == "from_parent" and note["copied_segments"] == 2, note  # 8-12 and 12-16 s changed
    assert_every_rung_shows(engine, derived, list(range(SECONDS * FPS)), tmp_path)
    # The lower rung shows the mask where the mask is, and the parent's pictures elsewhere.
    rung = hlscheck.renditions(stored(engine, derived))["360p"]
    width, height = round(W * 360 / H), 360
    frames = gray_frames(hlscheck.joined(rung, tmp_path), width, height)
    rows = slice(round(220 * height / H), round(330 * height / H))
    columns = slice(round(420 * width / W), round(580 * width / W))
    box = (rows, columns)
    assert frames[11 * FPS][box].max() < 40  # black while the region shows
    assert frames[5 * FPS][box].max() > 100 and frames[15 * FPS][box].max() > 100
    original = engine.settings.data_dir / "storage" / derived.original["key"]  # type: ignore[index]
    check_ladder(stored(engine, derived), original, tmp_path)


def test_a_derived_asset_whose_parent_goes_away_mid_copy_encodes_the_rest_and_is_exact(
    engine: Engine, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = ready_parent(engine, source)
    real = tsshift.shift
    copies: list[int] = []

    def shift_then_delete_the_parent(data: bytes, ticks: int) -> bytes:
        copies.append(ticks)
        if len(copies) == 1:  # the parent is deleted while its first segment is being copied
            operations.remove_asset(engine.services, parent.id)
        return real(data, ticks)

    monkeypatch.setattr(inplace.tsshift, "shift", shift_then_delete_the_parent)
    derived = derive(engine, parent, "media.remove_frames", {"ranges": [{"start": 5.1, "end": 6.6}]})

    assert derived.state == assets.READY, derived.error
    note = process_job(engine, derived.id).result["from_parent"]  # type: ignore[index]
    # One segment came from the parent's version before it went; every other one was encoded.
    assert note["built"] == "from_parent" and note["copied_segments"] == 1, note
    assert "went away" in note["reason"], note
    assert_every_rung_shows(engine, derived, kept([(128, 165)]), tmp_path)
    assert assets.find_media(engine.db, parent.id) is None


def test_a_derived_asset_whose_parent_was_reprocessed_is_built_in_full_and_says_why(
    engine: Engine, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = ready_parent(engine, source)
    version = parent.hls["path"]  # type: ignore[index]
    # The parent's version is replaced (and its files removed, as the swap's cleanup does) after the
    # operation read the parent and before the derived asset's ladder is built.
    from mediajobs.media.kinds import operations as operation_kinds

    real_finish = operation_kinds._finish_derived

    def finish_after_a_reprocess(*args: Any, **kwargs: Any) -> dict[str, Any]:
        for_process(engine.settings).delete_prefix(f"{assets.prefix(parent.id)}{version}/")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(operation_kinds, "_finish_derived", finish_after_a_reprocess)
    derived = derive(engine, parent, "media.remove_frames", {"ranges": [{"start": 5.1, "end": 6.6}]})

    assert derived.state == assets.READY, derived.error
    note = process_job(engine, derived.id).result["from_parent"]  # type: ignore[index]
    assert note["built"] == "full" and "went away" in note["reason"], note
    assert_every_rung_shows(engine, derived, kept([(128, 165)]), tmp_path)


def test_a_derived_stream_that_cannot_be_copied_after_all_is_withdrawn_and_built_in_full(
    engine: Engine, parent: Media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = faststart._check_idr
    refused: list[int] = []

    def refuse_the_third_segment_once(out: Path, name: str, i: int) -> None:
        if i == 2 and not refused:
            refused.append(i)
            raise faststart.NotCopyable(f"segment {i} of the source's stream does not start with a keyframe")
        real(out, name, i)

    monkeypatch.setattr(faststart, "_check_idr", refuse_the_third_segment_once)
    derived = derive(engine, parent, "media.remove_frames", {"ranges": [{"start": 5.1, "end": 6.6}]})

    assert derived.state == assets.READY, derived.error
    note = process_job(engine, derived.id).result["from_parent"]  # type: ignore[index]
    assert note["built"] == "full" and "cannot be copied as it is" in note["reason"], note
    assert refused == [2]
    # What the abandoned version had stored went with it: one version is left, the one that plays.
    versions = engine.settings.data_dir / "storage" / assets.prefix(derived.id) / "hls"
    assert [p.name for p in versions.iterdir()] == [derived.hls["path"].split("/")[1]]  # type: ignore[index]
    assert_every_rung_shows(engine, derived, kept([(128, 165)]), tmp_path)


def test_a_clip_copies_the_segments_inside_its_range_and_keeps_equal_extinf_everywhere(
    engine: Engine, parent: Media, tmp_path: Path
) -> None:
    derived = derive(engine, parent, "media.clip", {"start": 3.3, "end": 13.7, "crop": None})

    assert derived.state == assets.READY, derived.error
    note = process_job(engine, derived.id).result["from_parent"]  # type: ignore[index]
    # The 0.7 s before the parent's 4 s segment joins it (one encoded segment), 8-12 s is copied, the tail
    # from 12 s is encoded.
    assert note["built"] == "from_parent", note
    assert (note["copied_segments"], note["encoded_segments"]) == (1, 2), note
    out = stored(engine, derived)
    found = hlscheck.renditions(out)
    assert len({tuple(r.durations) for r in found.values()}) == 1
    durations = [d for d, _ in parse_media_playlist((out / "360p" / "index.m3u8").read_text())]
    assert abs(sum(durations) - (343 - 83) / FPS) < 0.05
    assert_every_rung_shows(engine, derived, list(range(83, 343)), tmp_path)  # frames in [3.3, 13.7)
    assert json.loads((out / "ladder.json").read_text())["sizes"]["360p"]  # a parent for the next edit


@pytest.fixture(scope="module")
def one_rung_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A standard 360p source: its ladder is its own stream alone, so a stream cut from it is whole."""
    path = tmp_path_factory.mktemp("one-rung") / "small.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=s=640x360:r={FPS}:d={SECONDS}", "-f", "lavfi",
        "-i", f"sine=frequency=300:sample_rate=48000:d={SECONDS}", "-c:v", "libx264", "-preset", "ultrafast",
        "-x264-params", "keyint=50:min-keyint=50:scenecut=0", "-pix_fmt", "yuv420p", "-c:a", "aac", path,
    )  # fmt: skip
    return path


def test_a_derived_asset_whose_in_place_build_fails_ends_failed_and_its_parent_plays_on(
    engine: Engine, one_rung_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = ready_parent(engine, one_rung_source)
    parent_files = sorted(p.name for p in stored(engine, parent).rglob("*"))
    encoding: list[int] = []

    def fail_after_the_top_was_published(*args: Any, **kwargs: Any) -> None:
        encoding.append(1)  # the derived stream is cut and published whole by now: its one rung
        raise ProcessFailed("ffmpeg exited with 1: Conversion failed!")

    monkeypatch.setattr(inplace, "_encode", fail_after_the_top_was_published)
    derived = derive(engine, parent, "media.remove_frames", {"ranges": [{"start": 5.1, "end": 6.6}]})

    assert encoding, "the derived ladder was not built in place"
    job = process_job(engine, derived.id)
    assert (job.state, job.error["code"]) == ("failed", "process_failed"), job.error  # type: ignore[index]
    assert derived.state == assets.FAILED, derived.hls
    assert derived.error == job.error
    assert derived.hls is None and derived.playable_at is None
    versions = engine.settings.data_dir / "storage" / assets.prefix(derived.id) / "hls"
    assert not versions.exists() or not any(versions.rglob("*.ts"))  # what it published is removed
    # The parent it was made from is as it was: ready, the same version, every file in place.
    again = media_of(engine, parent.id)
    assert (again.state, again.hls) == (assets.READY, parent.hls)
    assert sorted(p.name for p in stored(engine, again).rglob("*")) == parent_files


def test_an_operation_that_cannot_lend_its_parents_ladder_says_why() -> None:
    whole = SimpleNamespace(hls={"path": "hls/ab12", "variants": [{"ready": True}, {"ready": True}]})
    growing = SimpleNamespace(hls={"path": "hls/ab12", "variants": [{"ready": True}, {"ready": False}]})
    cropped = RenderReport("full", 4.0, 0.0, "cropping to 9:16 changes every picture")
    everything = RenderReport("smart", 0.0, 24.0)
    smart = RenderReport("smart", 1.0, 23.0, edit=Edit.of(Fraction(FPS), 600, removed=[(10, 20)]))

    assert _from_parent(whole, cropped) == {
        "reason": "the operation re-encoded every picture (cropping to 9:16 changes every picture)"
    }
    assert "copied the parent's streams whole" in _from_parent(whole, everything)["reason"]
    assert _from_parent(growing, smart) == {"reason": "the parent has no whole ladder"}
    assert _from_parent(SimpleNamespace(hls=None), smart) == {"reason": "the parent has no whole ladder"}
    given = operations.FromParent.model_validate(_from_parent(whole, smart))
    assert given.version == "hls/ab12" and given.edit is not None
    with pytest.raises(ValueError, match="pattern"):
        operations.FromParent.model_validate({"version": "hls/../../other/hls/ab12", "edit": given.edit})
