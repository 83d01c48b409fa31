"""The one storage handle of a process, shared by its routes, tasks, node record and doctor checks."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from mediajobs.storage.storage import Storage, open_storage

if TYPE_CHECKING:
    from mediajobs.config import Settings

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
