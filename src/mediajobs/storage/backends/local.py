"""Storage in a local directory: the embedded default, one file per key, written atomically."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from mediajobs.storage.partial import Partial, PartialLost, PartialWriter
from mediajobs.storage.storage import (
    CHUNK_BYTES,
    ByteStream,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectWriter,
    Storage,
    StorageDenied,
    StorageError,
    StorageUnavailable,
    check_range,
    content_type_for,
    join_key,
    retry,
    safe_key,
    safe_prefix,
)

# Temp files sit next to their target so os.replace stays on one file system; list() hides them.
TEMP_TAG = ".mjtmp-"
CHECK_PREFIX = f".check{TEMP_TAG}"  # check()'s probe file in the root (readyz, doctor)
PARTIAL_TAG = f"{TEMP_TAG}partial-"  # a partial object's file, beside its key until it is finished


@contextmanager
def _os_errors(what: str, key: str) -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        if what != "read":
            raise StorageError(f"cannot {what} {key!r}: {exc.strerror or exc}") from exc
        raise ObjectNotFound(f"no object {key!r}") from exc
    except OSError as exc:
        raise _os_error(exc)(f"cannot {what} {key!r}: {exc.strerror or exc}") from exc


def _os_error(exc: OSError) -> type[StorageError]:
    """The storage error an OSError means: denied (permissions), unavailable (may pass) or plain."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageDenied
    if exc.errno in (errno.ENOSPC, errno.EIO, errno.EAGAIN):
        return StorageUnavailable
    return StorageError


def _remove_dir(directory: Path, prefix: str) -> None:
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise StorageError(f"cannot delete {prefix!r}: {exc.strerror or exc}") from exc
        # A writer added a file while we swept; StorageUnavailable makes retry() sweep again.
        raise StorageUnavailable(f"{prefix!r} is still not empty after deleting its objects") from exc


def _adopt(fd: int, st: os.stat_result, temp: Path) -> bool:
    """Link the open file `fd` (a job's output it is done with) at `temp`, made the storage's own: owned by
    this process's user and 0644, so that the jailed child that wrote it cannot open it for writing again.
    False when it cannot be linked (another file system), or when it has another name already (a link the
    child made beside it would stay writable to the job's next children): the caller copies it instead."""
    if st.st_nlink != 1 or st.st_dev != os.stat(temp.parent).st_dev:
        return False
    try:
        if st.st_uid != os.geteuid() or st.st_gid != os.getegid():
            os.fchown(fd, os.geteuid(), os.getegid())
        os.fchmod(fd, 0o644)
        # The inode that was checked, whatever its name points at by now: linkat(2) following the
        # descriptor's /proc link (os.link calls plain link(2), which does not follow, without a dir fd).
        fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.link(str(fd), temp, src_dir_fd=fds, follow_symlinks=True)
        finally:
            os.close(fds)
    except OSError:
        return False
    return True


def _copy(fd: int, temp: Path) -> None:
    with open(temp, "xb") as out:
        offset = 0
        while sent := os.sendfile(out.fileno(), fd, offset, 1 << 30):
            offset += sent


class LocalWriter(ObjectWriter):
    def __init__(self, storage: LocalStorage, key: str, path: Path) -> None:
        super().__init__(key)
        self._storage = storage
        self._path = path
        with _os_errors("write", key):
            self._temp = storage.temp_path(path)
            self._file: BinaryIO = open(self._temp, "xb")  # noqa: SIM115 -- closed by commit/abort

    def _write(self, data: bytes) -> None:
        with _os_errors("write", self.key):
            self._file.write(data)

    def _commit(self) -> None:
        # No fsync: atomic rename already keeps readers from seeing partial objects, and a crash
        # mid-job re-runs the job anyway.
        with _os_errors("write", self.key):
            self._file.close()
            os.replace(self._temp, self._path)

    def _abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)
        self._storage.prune(self._path.parent)


class LocalPartialWriter(PartialWriter):
    """Appends to the partial object's own file; a checkpoint syncs it, so a recorded size is on disk."""

    def __init__(self, key: str, state: Partial, path: Path) -> None:
        super().__init__(key, state)
        with _os_errors("write", key):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                stored = os.fstat(fd).st_size
                if stored < self.size:
                    raise PartialLost(f"{key!r} holds {stored} of the {self.size} bytes recorded")
                # Bytes past the recorded size were never acknowledged (a writer that died, a bad checksum).
                os.ftruncate(fd, self.size)
                os.lseek(fd, self.size, os.SEEK_SET)
            except BaseException:
                os.close(fd)
                raise
        self._file: BinaryIO = os.fdopen(fd, "wb")

    def _write(self, data: bytes) -> None:
        with _os_errors("write", self.key):
            self._file.write(data)

    def checkpoint(self) -> Partial:
        return self.flush()

    def flush(self) -> Partial:
        with _os_errors("write", self.key):
            self._file.flush()
            os.fdatasync(self._file.fileno())
        return {**self.start, "size": self.size}

    def recorded(self, state: Partial) -> None:
        self.start = dict(state)

    def discard(self) -> None:
        pass  # the next writer truncates the file to the recorded size

    def close(self) -> None:
        self._file.close()


class LocalStorage(Storage):
    """Objects as files under `root`; `signed_url` is None, so the API streams them."""

    def __init__(self, root: Path, *, part_size_bytes: int | None = None) -> None:
        # part_size_bytes only matters to S3; accepted so tests build both backends alike.
        self.root = Path(root).absolute()
        # A root that cannot be created is reported by check() with a specific message.
        with suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        key = safe_key(key)
        if TEMP_TAG in key:
            raise InvalidKey(f"key {key!r} contains {TEMP_TAG!r}, reserved for local storage's temp files")
        return self.root / key

    def temp_path(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.parent / f".{path.name[:200]}{TEMP_TAG}{secrets.token_hex(6)}"

    def prune(self, directory: Path) -> None:
        """Remove empty directories from `directory` up to (not including) the root."""
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _copy_in(self, source: Path, key: str, *, consume: bool = False) -> None:
        target = self.path(key)
        with _os_errors("write", key):
            try:
                # Never through a symlink: a job's output is written where its jailed children could put one
                # pointing at a file of the worker's.
                fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
                    raise
                fd = -1
            try:
                st = os.fstat(fd) if fd >= 0 else None
                if st is None or not S_ISREG(st.st_mode):
                    raise StorageError(f"cannot store {key!r}: {source} is not a regular file")
                temp = self.temp_path(target)
                try:
                    if not (consume and _adopt(fd, st, temp)):
                        _copy(fd, temp)
                    os.replace(temp, target)
                finally:
                    temp.unlink(missing_ok=True)
            finally:
                if fd >= 0:
                    os.close(fd)
            if consume:
                source.unlink(missing_ok=True)

    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, consume: bool = False
    ) -> None:
        self._copy_in(path, key, consume=consume)

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        with self.open_writer(key) as writer:
            writer.write(data)

    def put_dir(self, prefix: str, directory: Path, *, consume: bool = False) -> list[str]:
        safe_prefix(prefix)
        if not directory.is_dir():
            raise StorageError(f"cannot upload {directory}: not a directory")
        keys = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            key = join_key(prefix, path.relative_to(directory).as_posix())
            self._copy_in(path, key, consume=consume)
            keys.append(key)
        return sorted(keys)

    def open_writer(self, key: str, *, content_type: str | None = None) -> LocalWriter:
        return LocalWriter(self, key, self.path(key))

    def get_file(self, key: str, path: Path) -> None:
        source = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f".{path.name[:200]}{TEMP_TAG}{secrets.token_hex(6)}"
        try:
            with _os_errors("read", key):
                try:
                    # Stored objects are never written in place (writers replace them), so a hard link is
                    # a copy that costs nothing: a ten-minute original is ready for ffmpeg at once.
                    os.link(source, temp)
                except OSError:
                    if not source.is_file():
                        raise
                    shutil.copyfile(source, temp)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)

    def readable_path(self, key: str) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object {key!r}")
        return path

    def open_reader(self, key: str, *, start: int | None = None, end: int | None = None) -> ByteStream:
        path = self.path(key)
        with _os_errors("read", key):
            file = open(path, "rb")  # noqa: SIM115 -- ByteStream closes it
        try:
            first, last = check_range(os.fstat(file.fileno()).st_size, start, end)
            file.seek(first)
        except BaseException:
            file.close()
            raise

        def chunks() -> Iterator[bytes]:
            remaining = last - first + 1
            while remaining > 0:
                chunk = file.read(min(CHUNK_BYTES, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

        return ByteStream(chunks(), file.close)

    def read_bytes(self, key: str) -> bytes:
        with _os_errors("read", key):
            return self.path(key).read_bytes()

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = self.path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not S_ISREG(st.st_mode):
            return None
        return ObjectInfo(
            key=key,
            size=st.st_size,
            content_type=content_type_for(key),
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def delete(self, key: str) -> None:
        path = self.path(key)
        if path.is_dir():
            return  # a directory is a prefix, not an object: like S3, deleting a missing object is a no-op
        with _os_errors("delete", key):
            path.unlink(missing_ok=True)
        self.prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        base = self.root / safe_prefix(prefix)
        removed = 0

        def sweep() -> None:
            nonlocal removed
            for directory, dirs, files in os.walk(base, topdown=False):
                for name in files:
                    with _os_errors("delete", name):
                        (Path(directory) / name).unlink(missing_ok=True)
                    if TEMP_TAG not in name:
                        removed += 1
                for name in dirs:
                    _remove_dir(Path(directory) / name, prefix)
            _remove_dir(base, prefix)

        retry(sweep)
        self.prune(base.parent)
        return removed

    def copy_prefix(self, src_prefix: str, dst_prefix: str) -> list[str]:
        src, dst = safe_prefix(src_prefix), safe_prefix(dst_prefix)
        keys = []
        for key in [*self.list(src)]:
            target = safe_key(dst + key.removeprefix(src))
            self._copy_in(self.path(key), target)
            keys.append(target)
        return keys

    def signed_url(
        self,
        key: str,
        *,
        expires_s: int = 3600,
        content_type: str | None = None,
        disposition: str | None = None,
    ) -> str | None:
        safe_key(key)
        return None

    def _partial_path(self, key: str, state: Partial) -> Path:
        name = str(state.get("file", ""))
        if not name.startswith(".") or PARTIAL_TAG not in name or "/" in name or "\\" in name:
            raise InvalidKey(f"{name!r} is not the file of a partial object")
        return self.path(key).parent / name

    def begin_partial(self, key: str, *, content_type: str | None = None, size_hint: int = 0) -> Partial:
        name = self.path(key).name
        return {"size": 0, "file": f".{name[:200]}{PARTIAL_TAG}{secrets.token_hex(6)}"}

    def resume_partial(self, key: str, state: Partial) -> LocalPartialWriter:
        return LocalPartialWriter(key, state, self._partial_path(key, state))

    def finish_partial(self, key: str, state: Partial) -> int:
        size, source, target = int(state["size"]), self._partial_path(key, state), self.path(key)
        with _os_errors("write", key):
            try:
                stored = source.stat().st_size
            except FileNotFoundError:
                done = self.stat(key)
                if done is not None and done.size == size:
                    return size  # finished before: the record of it was what did not happen
                raise PartialLost(f"{key!r} has no stored bytes to finish") from None
            if stored < size:
                raise PartialLost(f"{key!r} holds {stored} of the {size} bytes recorded")
            os.truncate(source, size)
            os.replace(source, target)
        return size

    def abort_partial(self, key: str, state: Partial) -> None:
        path = self._partial_path(key, state)
        with _os_errors("delete", key):
            path.unlink(missing_ok=True)
        self.prune(path.parent)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f"{CHECK_PREFIX}{secrets.token_hex(6)}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise _os_error(exc)(f"storage directory {self.root} is not writable: {reason}") from exc

    def describe(self) -> str:
        return f"file://{self.root}"

    # Last in the class: a method named `list` shadows the builtin in annotations that follow it.
    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / safe_prefix(prefix) if prefix else self.root
        keys = []
        for directory, _, files in os.walk(base):
            for name in files:
                if TEMP_TAG not in name:
                    keys.append((Path(directory) / name).relative_to(self.root).as_posix())
        yield from sorted(keys)
