"""Media asset states: spelled here only, so the CLI can use them without loading the database layer."""

from __future__ import annotations

PENDING = "pending"
# A resumable upload whose bytes are still arriving (its `upload` in the media JSON says how many).
UPLOADING = "uploading"
IMPORTING = "importing"
PROCESSING = "processing"
READY = "ready"
FAILED = "failed"
DELETING = "deleting"

STATES = (PENDING, UPLOADING, IMPORTING, PROCESSING, READY, FAILED, DELETING)
# Where an asset stays until someone acts on it (a reprocess, a delete).
SETTLED = frozenset({READY, FAILED})
