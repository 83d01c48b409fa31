from __future__ import annotations

import hashlib
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mediajobs.config import Settings
from mediajobs.confine import SANDBOX_UID
from mediajobs.storage import (
    InvalidKey,
    InvalidRange,
    ObjectNotFound,
    Storage,
    StorageError,
    join_key,
    open_storage,
    safe_key,
)
from mediajobs.storage.backends.local import LocalStorage
from mediajobs.storage.backends.s3 import S3Storage
from tests.storage.conftest import PART_SIZE, Leftovers

MiB = 1024 * 1024
BIG = os.urandom(2 * PART_SIZE + MiB)  # three parts: two full, one short
BAD_KEYS = ["../x", "/etc/passwd", "a/../../b", "%2e%2e/x", "a/%2E%2E/%2e%2e/b", "a\\b", "a//b", "a/\x00b"]


def test_put_bytes_round_trips_with_a_type_from_the_extension(storage: Storage) -> None:
    storage.put_bytes("media/a/index.m3u8", b"#EXTM3U\n")
    assert storage.read_bytes("media/a/index.m3u8") == b"#EXTM3U\n"
    info = storage.stat("media/a/index.m3u8")
    assert info is not None
    assert (info.key, info.size, info.content_type) == (
        "media/a/index.m3u8",
        8,
        "application/vnd.apple.mpegurl",
    )
    assert info.etag


def test_put_file_and_get_file_round_trip_a_multipart_sized_file(storage: Storage, tmp_path: Path) -> None:
    source, copy = tmp_path / "in.mp4", tmp_path / "out" / "copy.mp4"
    source.write_bytes(BIG)
    storage.put_file("media/a/original", source, content_type="video/mp4")
    storage.get_file("media/a/original", copy)
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(BIG).digest()
    assert [*storage.list("media")] == ["media/a/original"]


def test_put_dir_uploads_a_tree_typed_by_extension(storage: Storage, tmp_path: Path) -> None:
    tree = tmp_path / "hls"
    (tree / "720p").mkdir(parents=True)
    files = {
        "master.m3u8": b"#EXTM3U",
        "720p/index.m3u8": b"#EXTM3U",
        "720p/seg_000.ts": b"ts",
        "thumb.jpg": b"j",
    }
    for name, data in files.items():
        (tree / name).write_bytes(data)
    keys = storage.put_dir("media/a/hls", tree)
    assert keys == sorted(f"media/a/hls/{name}" for name in files)
    assert storage.read_bytes("media/a/hls/720p/seg_000.ts") == b"ts"
    types = {key: info.content_type for key in keys if (info := storage.stat(key))}
    assert types["media/a/hls/720p/seg_000.ts"] == "video/mp2t"
    assert types["media/a/hls/master.m3u8"] == "application/vnd.apple.mpegurl"
    assert types["media/a/hls/thumb.jpg"] == "image/jpeg"


def test_put_file_consume_takes_the_file_and_local_storage_copies_nothing(
    storage: Storage, backend: str, tmp_path: Path
) -> None:
    """A job's output it is done with: stored whole, gone from where it was; on local storage the stored
    object is that very file (linked into place on the same file system), not a copy of its bytes."""
    source = tmp_path / "out.mp4"
    source.write_bytes(BIG)
    inode = source.stat().st_ino
    storage.put_file("media/a/downloads/v/720p.mp4", source, content_type="video/mp4", consume=True)
    assert not source.exists()
    assert storage.read_bytes("media/a/downloads/v/720p.mp4") == BIG
    if isinstance(storage, LocalStorage):
        stored = storage.path("media/a/downloads/v/720p.mp4").stat()
        assert (stored.st_ino, stored.st_nlink) == (inode, 1)
    tree = tmp_path / "hls"
    (tree / "720p").mkdir(parents=True)
    (tree / "720p" / "seg_00000.ts").write_bytes(b"ts")
    assert storage.put_dir("media/a/hls", tree, consume=True) == ["media/a/hls/720p/seg_00000.ts"]
    assert not (tree / "720p" / "seg_00000.ts").exists()
    assert storage.read_bytes("media/a/hls/720p/seg_00000.ts") == b"ts"


def test_a_100_mib_result_moves_into_local_storage_whole_and_is_not_copied(tmp_path: Path) -> None:
    """What a job's result looks like once stored: byte for byte what the job wrote, the very file it wrote
    (same inode: its 100 MiB were not written a second time), and nothing of it left in the job's directory
    nor as a temp file beside the stored object."""
    storage = LocalStorage(tmp_path / "storage")
    job = tmp_path / "job"
    job.mkdir()
    data = os.urandom(100 * MiB)
    (job / "720p.mp4").write_bytes(data)
    written = (job / "720p.mp4").stat().st_ino
    storage.put_file("media/a/downloads/v1/720p.mp4", job / "720p.mp4", consume=True)
    stored = storage.path("media/a/downloads/v1/720p.mp4")
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert (stored.stat().st_ino, stored.stat().st_nlink) == (written, 1)
    assert [*job.iterdir()] == [] and os.listdir(stored.parent) == ["720p.mp4"]


def test_a_result_with_another_name_in_the_job_dir_is_copied_so_that_name_cannot_rewrite_it(
    tmp_path: Path,
) -> None:
    """A jailed child can link its output under a second name before the job stores it: moved in as it is,
    the stored object would stay writable through that name by the job's next children."""
    storage = LocalStorage(tmp_path / "storage")
    job = tmp_path / "job"
    job.mkdir()
    (job / "masked.mp4").write_bytes(b"the result")
    os.link(job / "masked.mp4", job / "kept")
    storage.put_file("media/a/original/masked.mp4", job / "masked.mp4", consume=True)
    (job / "kept").write_bytes(b"rewritten")
    assert storage.read_bytes("media/a/original/masked.mp4") == b"the result"
    assert not (job / "masked.mp4").exists()


@pytest.mark.parametrize("consume", [False, True])
def test_put_file_refuses_a_symlink_and_stores_nothing_of_its_target(
    storage: Storage, tmp_path: Path, consume: bool
) -> None:
    """A jailed child writes where a job's output is: a link it puts there in place of the file must not
    make the worker store what the link points at."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"the worker's secret")
    out = tmp_path / "job" / "masked.mp4"
    out.parent.mkdir()
    out.symlink_to(secret)
    with pytest.raises(StorageError, match="not a regular file"):
        storage.put_file("media/a/original/masked.mp4", out, consume=consume)
    (tmp_path / "job" / "hls").mkdir()
    (tmp_path / "job" / "hls" / "seg_00000.ts").symlink_to(secret)
    with pytest.raises(StorageError, match="not a regular file"):
        storage.put_dir("media/a/hls", tmp_path / "job" / "hls", consume=consume)
    assert [*storage.list("media")] == []
    assert secret.read_bytes() == b"the worker's secret"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file of the sandbox uid")
def test_a_consumed_file_of_the_sandbox_uid_becomes_the_storages_own(tmp_path: Path) -> None:
    """What a jailed child wrote (owned by the sandbox uid) is stored owned by the worker and read-only to
    others, so that no later jailed child can open the stored object for writing."""
    storage = LocalStorage(tmp_path / "storage")
    out = tmp_path / "still.jpg"
    out.write_bytes(b"jpeg")
    os.chown(out, SANDBOX_UID, SANDBOX_UID)
    out.chmod(0o666)
    storage.put_file("media/a/images/v/still.jpg", out, consume=True)
    stored = storage.path("media/a/images/v/still.jpg").stat()
    assert (stored.st_uid, stored.st_gid, stored.st_mode & 0o777) == (os.geteuid(), os.getegid(), 0o644)


def test_readable_path_is_the_local_file_itself_and_none_on_s3(storage: Storage, backend: str) -> None:
    storage.put_bytes("media/a/hls/v/720p/seg_00000.ts", b"segment")
    found = storage.readable_path("media/a/hls/v/720p/seg_00000.ts")
    if backend == "s3":
        assert found is None
        return
    assert found is not None and found.read_bytes() == b"segment"
    assert found == storage.path("media/a/hls/v/720p/seg_00000.ts")  # type: ignore[attr-defined]
    with pytest.raises(ObjectNotFound):
        storage.readable_path("media/a/hls/v/720p/seg_00001.ts")


def test_writer_streams_an_object_of_several_parts(storage: Storage, backend: str) -> None:
    writer = storage.open_writer("media/a/original", content_type="video/mp4")
    for offset in range(0, len(BIG), MiB):
        writer.write(BIG[offset : offset + MiB])
    assert writer.written == len(BIG)
    assert not storage.exists("media/a/original")  # invisible until committed
    assert writer.commit() == len(BIG)
    assert storage.read_bytes("media/a/original") == BIG
    info = storage.stat("media/a/original")
    assert info is not None and info.size == len(BIG)
    if backend == "s3":
        assert info.content_type == "video/mp4"
        assert info.etag and info.etag.endswith("-3")  # S3 marks multipart ETags with the part count


@pytest.mark.parametrize("data", [b"", b"small"])
def test_writer_stores_small_and_empty_objects(storage: Storage, data: bytes) -> None:
    with storage.open_writer("media/a/small.bin") as writer:
        writer.write(data)
    assert storage.read_bytes("media/a/small.bin") == data


def test_writer_abort_leaves_nothing_behind(storage: Storage, leftovers: Leftovers) -> None:
    writer = storage.open_writer("media/a/original")
    writer.write(BIG[: PART_SIZE + MiB])  # S3 has started a multipart upload by now
    writer.abort()
    writer.abort()
    assert [*storage.list("media")] == []
    assert leftovers() == []
    with pytest.raises(StorageError, match="already committed or aborted"):
        writer.write(b"more")


def test_writer_context_aborts_on_exception(storage: Storage, leftovers: Leftovers) -> None:
    with pytest.raises(RuntimeError), storage.open_writer("media/a/original") as writer:
        writer.write(BIG[: PART_SIZE + MiB])
        raise RuntimeError("client went away")
    assert not storage.exists("media/a/original")
    assert leftovers() == []


def test_open_reader_streams_whole_objects_and_byte_ranges(storage: Storage) -> None:
    data = os.urandom(3 * MiB + 17)
    storage.put_bytes("media/a/v.mp4", data)
    assert b"".join(storage.open_reader("media/a/v.mp4")) == data
    assert b"".join(storage.open_reader("media/a/v.mp4", start=10, end=19)) == data[10:20]
    assert b"".join(storage.open_reader("media/a/v.mp4", start=MiB)) == data[MiB:]
    assert b"".join(storage.open_reader("media/a/v.mp4", end=99)) == data[:100]
    assert b"".join(storage.open_reader("media/a/v.mp4", start=len(data) - 5, end=10**12)) == data[-5:]
    with pytest.raises(InvalidRange):
        storage.open_reader("media/a/v.mp4", start=len(data))


def test_reader_can_be_closed_before_the_end(storage: Storage) -> None:
    storage.put_bytes("media/a/v.mp4", BIG[: 3 * MiB])
    stream = storage.open_reader("media/a/v.mp4")
    assert next(stream)
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)


def test_missing_objects_raise_object_not_found_before_streaming(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        storage.open_reader("media/a/missing.mp4")
    with pytest.raises(ObjectNotFound):
        storage.read_bytes("media/a/missing.mp4")
    with pytest.raises(ObjectNotFound):
        storage.get_file("media/a/missing.mp4", tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_stat_and_exists_see_objects_not_prefixes(storage: Storage) -> None:
    storage.put_bytes("media/a/b.txt", b"x")
    assert storage.exists("media/a/b.txt")
    assert not storage.exists("media/a")
    assert storage.stat("media/a") is None
    assert storage.stat("media/nope.txt") is None


def test_list_is_recursive_sorted_and_respects_prefix_boundaries(storage: Storage) -> None:
    for key in ["media/ab/z.ts", "media/ab/hls/1.ts", "media/abc/x", "media/ab.txt", "other/y"]:
        storage.put_bytes(key, b"x")
    assert [*storage.list("media/ab")] == ["media/ab/hls/1.ts", "media/ab/z.ts"]
    assert [*storage.list("media/ab/")] == ["media/ab/hls/1.ts", "media/ab/z.ts"]
    assert [*storage.list("")] == sorted(
        ["media/ab/z.ts", "media/ab/hls/1.ts", "media/abc/x", "media/ab.txt", "other/y"]
    )
    assert [*storage.list("missing")] == []


def test_delete_prefix_removes_nested_objects_but_not_a_sibling_prefix(storage: Storage) -> None:
    for key in ["media/ab/original", "media/ab/hls/720p/0.ts", "media/ab/hls/master.m3u8", "media/abc/keep"]:
        storage.put_bytes(key, b"x")
    assert storage.delete_prefix("media/ab") == 3
    assert [*storage.list("media/ab")] == []
    assert [*storage.list("")] == ["media/abc/keep"]
    assert storage.delete_prefix("media/ab") == 0
    if isinstance(storage, LocalStorage):
        assert sorted(p.name for p in (storage.root / "media").iterdir()) == ["abc"]  # empty dirs went too


def test_delete_prefix_deletes_more_than_one_batch(storage: Storage) -> None:
    keys = [f"media/many/{i:04d}.ts" for i in range(1010)]
    with ThreadPoolExecutor(16) as pool:
        [*pool.map(lambda key: storage.put_bytes(key, b"x"), keys)]
    assert storage.delete_prefix("media/many") == 1010
    assert [*storage.list("media/many")] == []


def test_delete_prefix_also_discards_unfinished_uploads(storage: Storage, leftovers: Leftovers) -> None:
    writer = storage.open_writer("media/a/original")
    writer.write(BIG[: PART_SIZE + MiB])
    storage.delete_prefix("media/a")
    assert leftovers() == []
    writer.abort()


def test_delete_removes_one_object_and_ignores_missing_ones(storage: Storage) -> None:
    storage.put_bytes("media/a/b.txt", b"x")
    storage.put_bytes("media/a/c.txt", b"x")
    storage.delete("media/a/b.txt")
    storage.delete("media/a/b.txt")
    storage.delete("media/a")  # a prefix is not an object
    assert [*storage.list("media")] == ["media/a/c.txt"]


def test_copy_prefix_duplicates_a_set_and_keeps_the_source(storage: Storage) -> None:
    storage.put_bytes("media/a/hls-new/master.m3u8", b"#EXTM3U")
    storage.put_bytes("media/a/hls-new/720p/0.ts", b"ts")
    keys = storage.copy_prefix("media/a/hls-new", "media/a/hls")
    assert sorted(keys) == ["media/a/hls/720p/0.ts", "media/a/hls/master.m3u8"]
    assert storage.read_bytes("media/a/hls/720p/0.ts") == b"ts"
    assert len([*storage.list("media/a/hls-new")]) == 2
    info = storage.stat("media/a/hls/master.m3u8")
    assert info is not None and info.content_type == "application/vnd.apple.mpegurl"


def test_signed_url_serves_the_object_over_http_on_s3_only(storage: Storage, backend: str) -> None:
    storage.put_bytes("media/a/thumb.jpg", b"jpeg bytes")
    url = storage.signed_url("media/a/thumb.jpg", expires_s=60)
    if backend == "local":
        assert url is None
        return
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"jpeg bytes"
    assert response.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_operation_rejects_keys_that_escape_their_prefix(
    storage: Storage, key: str, tmp_path: Path
) -> None:
    attempts = [
        lambda: storage.put_bytes(key, b"x"),
        lambda: storage.read_bytes(key),
        lambda: storage.stat(key),
        lambda: storage.open_reader(key),
        lambda: storage.open_writer(key),
        lambda: storage.get_file(key, tmp_path / "out"),
        lambda: storage.delete(key),
        lambda: storage.signed_url(key),
        lambda: storage.delete_prefix(key),
        lambda: storage.put_dir(key, tmp_path),
        lambda: [*storage.list(key)],
        lambda: storage.copy_prefix(key, "media/b"),
        lambda: storage.copy_prefix("media/b", key),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidKey):
            attempt()


def test_object_keys_name_a_file_and_no_prefix_means_everything(storage: Storage) -> None:
    storage.put_bytes("media/a/b", b"x")
    for key in ["", "media/a/"]:
        with pytest.raises(InvalidKey):
            storage.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        storage.delete_prefix("")  # wiping the whole storage is never what a caller means
    assert storage.exists("media/a/b")


@pytest.mark.parametrize(
    "path", ["../other/x", "%2e%2e/other", "..%2fother", "a/../../b", "/abs", "%252e%252e/x"]
)
def test_join_key_keeps_paths_inside_the_prefix(path: str) -> None:
    with pytest.raises(InvalidKey):
        join_key("media/abc", path)


def test_safe_key_accepts_ordinary_names() -> None:
    assert safe_key("media/abc", "hls/720p/seg_000.ts") == "media/abc/hls/720p/seg_000.ts"
    assert join_key("media/abc/", "my video (1) 100%.mp4") == "media/abc/my video (1) 100%.mp4"
    assert safe_key("media", "..hidden", "a..b") == "media/..hidden/a..b"


def test_check_passes_on_a_working_storage(storage: Storage) -> None:
    storage.check()
    assert [*storage.list("")] == []  # the write probe cleans up after itself


def test_check_names_a_missing_bucket(moto_endpoint: str, aws_env: dict[str, str]) -> None:
    storage = S3Storage(bucket="no-such-bucket", endpoint_url=moto_endpoint, addressing_style="path")
    with pytest.raises(StorageError, match=r"'no-such-bucket' at http://127\.0\.0\.1:\d+ does not exist"):
        storage.check()


def test_check_names_an_unreachable_endpoint(aws_env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        storage = S3Storage(bucket="mediajobs", endpoint_url=endpoint)
        with pytest.raises(StorageError, match="cannot reach S3 endpoint"):
            storage.check()


def test_check_names_a_directory_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")  # even root cannot create a directory inside a file
    storage = LocalStorage(tmp_path / "file" / "storage")
    with pytest.raises(StorageError, match=r"storage directory \S+/file/storage is not writable"):
        storage.check()


def test_open_storage_chooses_the_backend_by_url(
    tmp_path: Path, moto_endpoint: str, aws_env: dict[str, str]
) -> None:
    local = open_storage(Settings(data_dir=tmp_path, storage_url=""))
    assert isinstance(local, LocalStorage)
    assert local.describe() == f"file://{tmp_path}/storage"
    s3 = open_storage(Settings(storage_url="s3://media-bucket/pre/fix", s3_endpoint_url=moto_endpoint))
    assert isinstance(s3, S3Storage)
    assert s3.describe() == f"s3://media-bucket/pre/fix/ @ {moto_endpoint}"
    for url in ["ftp://host/x", "file://relative/dir", "s3://ab"]:
        with pytest.raises(StorageError, match=r"storage URL|bucket name"):
            open_storage(Settings(storage_url=url))
