"""One storage interface for every task and route, backed by a local directory or an S3 bucket."""

from __future__ import annotations

from mediajobs.storage.handles import for_process, open_storage
from mediajobs.storage.storage import (
    ByteStream,
    InvalidKey,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    ObjectWriter,
    Storage,
    StorageDenied,
    StorageError,
    StorageUnavailable,
    content_type_for,
    join_key,
    safe_key,
    safe_prefix,
)

__all__ = [
    "ByteStream",
    "InvalidKey",
    "InvalidRange",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectWriter",
    "Storage",
    "StorageDenied",
    "StorageError",
    "StorageUnavailable",
    "content_type_for",
    "for_process",
    "join_key",
    "open_storage",
    "safe_key",
    "safe_prefix",
]
