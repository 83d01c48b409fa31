"""Partial objects (resumable uploads): bytes written over many writers, each resuming from a recorded state.

Run on a local directory, on moto's S3 server, and through the strict S3 front, with S3's smallest legal part
(5 MiB): a resumable upload may stop after any byte, S3 takes parts of 5 MiB or more, so what waits between
writers (a tail shorter than a part) is the part of the design most worth checking.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from mediajobs.storage import Storage
from mediajobs.storage.backends.local import LocalStorage
from mediajobs.storage.backends.s3 import S3Storage
from mediajobs.storage.partial import Partial, PartialLost
from mediajobs.testing.s3 import CREDENTIALS, create_bucket
from tests.storage.conftest import PART_SIZE
from tests.storage.strict_s3 import strict_s3_endpoint

__all__ = ["strict_s3_endpoint"]

MiB = 1024 * 1024
DATA = os.urandom(2 * PART_SIZE + 3 * MiB + 12345)  # two whole parts and a tail
KEY = "media/a/original/clip.mp4"


@pytest.fixture(params=["local", "s3", "strict-s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "storage")
    request.getfixturevalue("aws_env")
    fixture = "moto_endpoint" if request.param == "s3" else "strict_s3_endpoint"
    endpoint: str = request.getfixturevalue(fixture)
    return S3Storage(
        bucket=create_bucket(endpoint),
        prefix="tenant/one",
        endpoint_url=endpoint,
        addressing_style="path",
        part_size_bytes=PART_SIZE,
    )


def everything(store: Storage) -> list[str]:
    """Every object and unfinished multipart upload, and on local storage every file, temp files included."""
    if isinstance(store, LocalStorage):
        return sorted(
            (Path(d) / f).relative_to(store.root).as_posix()
            for d, _, files in os.walk(store.root)
            for f in files
        )
    assert isinstance(store, S3Storage)
    client = boto3.client("s3", endpoint_url=store.endpoint_url, **CREDENTIALS)
    found = [o["Key"] for o in client.list_objects_v2(Bucket=store.bucket).get("Contents", [])]
    uploads = client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return sorted(found + [f"{u['Key']} (unfinished upload)" for u in uploads])


def write(store: Storage, state: Partial, data: bytes, *, chunk: int = 256 * 1024) -> Partial:
    """One writer's turn: resume, write `data` in chunks, flush, and record."""
    writer = store.resume_partial(KEY, state)
    try:
        for at in range(0, len(data), chunk):
            writer.write(data[at : at + chunk])
        new = writer.flush()
        writer.recorded(new)
        return new
    finally:
        writer.close()


@pytest.mark.parametrize(
    "cuts",
    [
        [len(DATA)],
        [1, 100, PART_SIZE - 1, PART_SIZE + 1, 2 * PART_SIZE, len(DATA)],
        [3 * MiB, 4 * MiB, 9 * MiB, len(DATA) - 1, len(DATA)],
    ],
    ids=["one-writer", "cut-around-part-edges", "cut-inside-parts"],
)
def test_writers_resuming_from_recorded_states_store_every_byte_once(store: Storage, cuts: list[int]) -> None:
    state = store.begin_partial(KEY, content_type="video/mp4", size_hint=len(DATA))
    done = 0
    for cut in cuts:
        state = write(store, state, DATA[done:cut])
        done = cut
        assert state["size"] == cut
        assert not store.exists(KEY)  # nothing is published before it is finished
    assert store.finish_partial(KEY, state) == len(DATA)
    assert store.read_bytes(KEY) == DATA
    info = store.stat(KEY)
    assert info is not None and info.size == len(DATA)
    if isinstance(store, S3Storage):
        assert info.content_type == "video/mp4"
    assert everything(store) == [store.full_key(KEY) if isinstance(store, S3Storage) else KEY]


def test_a_writer_whose_state_was_never_recorded_changes_nothing(store: Storage) -> None:
    recorded = write(store, store.begin_partial(KEY, size_hint=len(DATA)), DATA[: PART_SIZE + 100])
    # A writer that stored parts and a tail, then died (or sent bytes that failed their checksum).
    lost = store.resume_partial(KEY, recorded)
    lost.write(os.urandom(PART_SIZE + 2 * MiB))
    lost.flush()
    lost.close()
    state = write(store, recorded, DATA[PART_SIZE + 100 :])
    store.finish_partial(KEY, state)
    assert store.read_bytes(KEY) == DATA
    leftovers = [k for k in everything(store) if not k.endswith(KEY)]
    assert leftovers == []


def test_a_discarded_writer_leaves_the_recorded_state_whole(store: Storage) -> None:
    recorded = write(store, store.begin_partial(KEY, size_hint=len(DATA)), DATA[:100])
    bad = store.resume_partial(KEY, recorded)
    bad.write(os.urandom(PART_SIZE + MiB))  # starts a multipart upload on S3
    bad.discard()
    bad.close()
    state = write(store, recorded, DATA[100:])
    store.finish_partial(KEY, state)
    assert store.read_bytes(KEY) == DATA


def test_checkpoint_stores_whole_parts_on_s3_and_everything_on_local(store: Storage) -> None:
    writer = store.resume_partial(KEY, store.begin_partial(KEY, size_hint=len(DATA)))
    writer.write(DATA[: PART_SIZE + MiB])
    state = writer.checkpoint()
    writer.close()
    assert state["size"] == (PART_SIZE if isinstance(store, S3Storage) else PART_SIZE + MiB)
    writer = store.resume_partial(KEY, state)  # the next writer starts from what the checkpoint stored
    writer.write(DATA[state["size"] :])
    final = writer.flush()
    writer.close()
    store.finish_partial(KEY, final)
    assert store.read_bytes(KEY) == DATA


def test_finishing_twice_is_harmless(store: Storage) -> None:
    state = write(store, store.begin_partial(KEY, size_hint=len(DATA)), DATA)
    assert store.finish_partial(KEY, state) == len(DATA)
    assert store.finish_partial(KEY, state) == len(DATA)
    assert store.read_bytes(KEY) == DATA


@pytest.mark.parametrize("size", [0, 10, PART_SIZE, PART_SIZE + 10])
def test_small_and_part_sized_objects_finish(store: Storage, size: int) -> None:
    state = write(store, store.begin_partial(KEY, size_hint=size), DATA[:size])
    store.finish_partial(KEY, state)
    assert store.read_bytes(KEY) == DATA[:size]


def test_abort_removes_parts_tails_and_files(store: Storage) -> None:
    state = write(store, store.begin_partial(KEY, size_hint=len(DATA)), DATA[: PART_SIZE + MiB])
    lost = store.resume_partial(KEY, state)
    lost.write(os.urandom(PART_SIZE))
    lost.flush()
    lost.close()
    assert everything(store)
    store.abort_partial(KEY, state)
    assert everything(store) == []


def test_resuming_more_than_storage_holds_is_refused(store: Storage) -> None:
    state = write(store, store.begin_partial(KEY, size_hint=len(DATA)), DATA[: MiB + 7])
    claimed = {**state, "size": state["size"] + 5}
    with pytest.raises(PartialLost):
        store.resume_partial(KEY, claimed).close()
    with pytest.raises(PartialLost):
        store.finish_partial(KEY, claimed)


def test_large_objects_get_parts_big_enough_for_s3s_part_count_limit(tmp_path: Path) -> None:
    state = S3Storage(bucket="any-bucket", part_size_bytes=PART_SIZE).begin_partial(
        KEY, size_hint=100 * 1024**3
    )
    assert state["part_size"] * 10_000 >= 100 * 1024**3
    assert LocalStorage(tmp_path).begin_partial(KEY, size_hint=100 * 1024**3)["size"] == 0
