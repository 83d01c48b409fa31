"""The storage interface every task and route uses, its errors and key safety (`handles` opens one)."""

from __future__ import annotations

import mimetypes
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote

from mediajobs.errors import MediajobsError, NotFound, PermanentError, TransientError

if TYPE_CHECKING:
    from mediajobs.storage.partial import Partial, PartialWriter

T = TypeVar("T")

PART_SIZE_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
MAX_KEY_BYTES = 1024  # S3's limit; local keys obey it too so both backends accept the same keys
MAX_SEGMENT_BYTES = 255  # a file name on common filesystems

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".aac": "audio/aac",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".vtt": "text/vtt",
    ".json": "application/json",
}


class StorageError(MediajobsError):
    """The storage backend refused or failed an operation."""

    code = "storage_error"


class StorageUnavailable(StorageError, TransientError):
    """The storage backend could not be reached or failed in a way that may pass."""

    code = "storage_unavailable"


class StorageDenied(StorageError, PermanentError):
    """The storage refused this process's credentials or permissions; trying again will not help."""

    code = "storage_denied"


class ObjectNotFound(StorageError, NotFound):
    """No object is stored under that key."""

    code = "not_found"


class InvalidKey(StorageError, PermanentError):
    """The key is malformed or would escape its prefix."""

    code = "invalid_key"


class InvalidRange(StorageError, PermanentError):
    """The requested byte range lies outside the object."""

    code = "invalid_range"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    etag: str | None = None
    modified_at: datetime | None = None


def content_type_for(name: str) -> str:
    """The Content-Type to store for a file name; HLS types first because mimetypes lacks them."""
    suffix = Path(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def _check_segment(segment: str, whole: str) -> None:
    # Check the percent-decoded form too: the API hands keys through from URL paths, and a later
    # layer (proxy, S3 console, browser) may decode `%2e%2e` into a real `..`.
    decoded = segment
    for _ in range(3):
        decoded = unquote(decoded)
    if "/" in decoded:
        raise InvalidKey(f"key {whole!r} hides a '/' in a percent-encoded segment")
    for form in (segment, decoded):
        if form in ("", ".", ".."):
            reason = "an empty segment" if form == "" else f"a {form!r} segment"
            raise InvalidKey(f"key {whole!r} has {reason}; keys are relative paths like 'media/<id>/a.m3u8'")
        if "\\" in form:
            raise InvalidKey(f"key {whole!r} contains a backslash; use '/' between segments")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in form):
            raise InvalidKey(f"key {whole!r} contains a NUL or control character")
    if len(segment.encode()) > MAX_SEGMENT_BYTES:
        raise InvalidKey(f"key {whole!r} has a segment longer than {MAX_SEGMENT_BYTES} bytes")


def safe_key(*parts: str) -> str:
    """Join relative key parts with '/', rejecting anything that could escape the first part."""
    if not parts:
        raise InvalidKey("a key needs at least one part")
    whole = "/".join(parts)
    for part in parts:
        if not isinstance(part, str):
            raise InvalidKey(f"key part {part!r} is not a string")
        if part.startswith("/"):
            raise InvalidKey(f"key {whole!r} is absolute; keys are relative to the storage root")
        for segment in part.split("/"):
            _check_segment(segment, whole)
    if len(whole.encode()) > MAX_KEY_BYTES:
        raise InvalidKey(f"key {whole[:60]!r}... is longer than {MAX_KEY_BYTES} bytes")
    return whole


def join_key(prefix: str, path: str) -> str:
    """The key of `path` (e.g. from a URL) inside `prefix`; raises InvalidKey if it would leave the prefix."""
    return safe_key(prefix.rstrip("/"), path)


def safe_prefix(prefix: str) -> str:
    """A validated prefix ending in '/', so that deleting 'ab' never touches 'abc'."""
    return safe_key(prefix.removesuffix("/")) + "/"


def retry(
    fn: Callable[[], T], *, attempts: int = 6, base_delay_s: float = 0.2, max_delay_s: float = 5.0
) -> T:
    """Call `fn` until it stops raising StorageUnavailable, backing off exponentially."""
    for attempt in range(attempts):
        try:
            return fn()
        except StorageUnavailable:
            if attempt == attempts - 1:
                raise
            time.sleep(min(max_delay_s, base_delay_s * 2**attempt))
    raise AssertionError("unreachable")


class ByteStream(Iterator[bytes]):
    """Chunks of one object; closes the underlying file or connection when exhausted or closed."""

    def __init__(self, chunks: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._chunks = iter(chunks)
        self._on_close: Callable[[], None] | None = on_close

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            close_chunks = getattr(self._chunks, "close", None)
            if close_chunks is not None:
                close_chunks()
            on_close()

    def __del__(self) -> None:
        self.close()


class ObjectWriter(ABC):
    """Streams one object into storage; nothing is visible under the key until `commit()`."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._written = 0
        self._closed = False

    @property
    def written(self) -> int:
        return self._written

    def write(self, data: bytes) -> None:
        if self._closed:
            raise StorageError(f"writer for {self.key!r} is already committed or aborted")
        if data:
            self._write(data)
            self._written += len(data)

    def commit(self) -> int:
        """Publish the object under its key and return its size in bytes."""
        if self._closed:
            raise StorageError(f"writer for {self.key!r} is already committed or aborted")
        self._closed = True
        try:
            self._commit()
        except BaseException:
            self._abort()
            raise
        return self._written

    def abort(self) -> None:
        """Discard everything written; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._abort()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A clean exit publishes like closing a file would; any exception discards the partial object.
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.commit()

    def __del__(self) -> None:
        # A writer dropped without commit or abort (a bug upstream) must still not leak temp files or parts.
        with suppress(Exception):
            self.abort()

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _abort(self) -> None: ...


class Storage(ABC):
    """Where every file of every asset lives; API and workers share it instead of a file system."""

    @abstractmethod
    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, consume: bool = False
    ) -> None:
        """Store the regular file at `path` (never a symlink: a job's children write where it is).

        `consume`: the caller is done with the file (a job's output it is about to delete), so the storage
        may take the file itself instead of a copy — local storage links it into place when it is on the
        same file system — and `path` is gone afterwards.
        """

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None: ...

    @abstractmethod
    def put_dir(self, prefix: str, directory: Path, *, consume: bool = False) -> list[str]:
        """Upload every file under `directory` to `prefix`, typed by extension; returns the sorted keys.

        `consume` as for `put_file`: the files are gone afterwards (the directories stay).
        """

    def readable_path(self, key: str) -> Path | None:
        """The object's own file, to read in place (never to write), where the storage keeps objects as files;
        None where it has to be fetched (`get_file`). Stored objects are replaced, never written in place, so
        a reader keeps a whole version of it whatever happens to the key meanwhile."""
        return None

    @abstractmethod
    def open_writer(self, key: str, *, content_type: str | None = None) -> ObjectWriter: ...

    @abstractmethod
    def get_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def open_reader(self, key: str, *, start: int | None = None, end: int | None = None) -> ByteStream:
        """The object in chunks, or bytes `start`..`end` inclusive (HTTP Range); errors raise up front."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None: ...

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove one object; removing a missing object is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under `prefix`, retrying until none is left; returns how many were removed."""

    @abstractmethod
    def copy_prefix(self, src_prefix: str, dst_prefix: str) -> list[str]:
        """Copy every object under `src_prefix` to `dst_prefix` (overwrites, never prunes); returns keys."""

    @abstractmethod
    def signed_url(
        self,
        key: str,
        *,
        expires_s: int = 3600,
        content_type: str | None = None,
        disposition: str | None = None,
    ) -> str | None:
        """A time-limited URL a browser can GET directly, or None when the API must stream the object.

        `content_type` overrides the stored type in the answer (what a client sent at upload is not trusted);
        `disposition`, when given, is the answer's Content-Disposition (a download under a readable name).
        """

    @abstractmethod
    def begin_partial(self, key: str, *, content_type: str | None = None, size_hint: int = 0) -> Partial:
        """The state of a new, empty partial object to be published under `key` (nothing is stored yet)."""

    @abstractmethod
    def resume_partial(self, key: str, state: Partial) -> PartialWriter:
        """A writer appending to the partial object from `state`; raises PartialLost if storage holds less."""

    @abstractmethod
    def finish_partial(self, key: str, state: Partial) -> int:
        """Publish the partial object under `key` (idempotent: done already is fine); its size in bytes."""

    @abstractmethod
    def abort_partial(self, key: str, state: Partial) -> None:
        """Remove everything stored for a partial object that will never be finished."""

    @abstractmethod
    def check(self) -> None:
        """Raise StorageError with a specific message unless the storage is reachable and writable."""

    @abstractmethod
    def describe(self) -> str: ...

    # Last in the class: a method named `list` shadows the builtin in annotations that follow it.
    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix` (as a directory, recursively) in sorted order; '' lists everything."""


def check_range(size: int, start: int | None, end: int | None) -> tuple[int, int]:
    """Resolve an inclusive byte range against an object's size, clamping `end` as HTTP does."""
    first = 0 if start is None else start
    last = size - 1 if end is None else min(end, size - 1)
    if first < 0 or (end is not None and end < first) or (start is not None and first >= size):
        raise InvalidRange(f"byte range {start}-{end} is outside an object of {size} bytes")
    return first, last
