"""The media API tests' stacks from the session's pool (tests/stacks.py): one per storage, a limited one."""

from __future__ import annotations

from tests.stacks import MediaStack, StackPool

LIMIT_BYTES = 1_500_000  # over one 1 MiB buffer: a too-large upload has begun writing when it is refused


def main_stack(pool: StackPool, storage: str) -> MediaStack:
    """The shared stack of one storage backend.

    Imports from 127.0.0.1 are allowed (the test HTTP server), and superseded HLS versions are removed
    one second after a reprocess swaps them out instead of after the default grace period.
    """
    return pool.get(f"main-{storage}", storage, import_allow_private="true", hls_swap_grace_s="1")


def limited_file_stack(pool: StackPool) -> MediaStack:
    """A stack on local storage whose MEDIAJOBS_MAX_UPLOAD_BYTES is LIMIT_BYTES."""
    return pool.get("limited-file", "file", max_upload_bytes=str(LIMIT_BYTES), import_allow_private="true")
