"""Opening a storage by URL, and the one storage handle of a process, shared by its routes, tasks, node
record and doctor checks."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mediajobs.config import Settings
from mediajobs.storage.backends.local import LocalStorage
from mediajobs.storage.storage import Storage, StorageError


def open_storage(settings: Settings) -> Storage:
    """The backend named by `MEDIAJOBS_STORAGE_URL`: `file:///abs/path` or `s3://bucket[/prefix]`."""
    url = settings.effective_storage_url
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise StorageError(f"storage URL {url!r} must name an absolute directory: file:///abs/path")
        return LocalStorage(Path(path))
    if parts.scheme == "s3":
        # Imported here for start-up cost alone: boto3 takes a good part of a second to load, and only a
        # process whose storage is S3 needs it (the CLI and file-storage stacks never do).
        from mediajobs.storage.backends.s3 import S3Storage

        return S3Storage(
            bucket=parts.netloc,
            prefix=unquote(parts.path).strip("/"),
            endpoint_url=settings.s3_endpoint_url or None,
            addressing_style=settings.s3_addressing_style,
        )
    raise StorageError(f"storage URL {url!r} is not supported; use file:///abs/path or s3://bucket[/prefix]")


# Keyed by pid: a boto3 client must not cross a fork into Celery's pool children, each opens its own.
_handles: dict[tuple[int, str, str, str], Storage] = {}
_lock = threading.Lock()


def for_process(settings: Settings) -> Storage:
    """This process's storage for `settings` (opened on first use; the same object afterwards)."""
    # Everything open_storage reads is in the key, so a process serving two configurations (tests,
    # `doctor` with another environment) never gets the other's backend.
    key = (
        os.getpid(),
        settings.effective_storage_url,
        settings.s3_endpoint_url or "",
        settings.s3_addressing_style,
    )
    with _lock:
        if key not in _handles:
            _handles[key] = open_storage(settings)
        return _handles[key]
