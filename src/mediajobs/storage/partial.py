"""Objects written over many requests (resumable uploads): bytes wait in storage, their state with the caller.

A partial object is described by a small JSON-able state (`Partial`) that the caller keeps (the API keeps it
in the database), so any process can continue it: `Storage.begin_partial` makes the first state,
`resume_partial` opens a writer from a recorded state, and the writer hands back new states as its bytes
become stored. What a writer stored beyond the last state its caller recorded is ignored and overwritten by
the next writer, so a writer that dies (or whose bytes turn out wrong) never corrupts the object.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from mediajobs.storage.storage import StorageError

Partial = dict[str, Any]  # {"size": bytes stored, "content_type": ..., and what the backend needs}


class PartialLost(StorageError):
    """The storage holds less of a partial object than its recorded state says."""

    code = "storage_error"


class PartialWriter(ABC):
    """Appends to a partial object from a recorded state; `size` counts every byte written, stored or not."""

    def __init__(self, key: str, state: Partial) -> None:
        self.key = key
        self.start = dict(state)
        self.size = int(state["size"])

    def write(self, data: bytes) -> None:
        if data:
            self._write(data)
            self.size += len(data)

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def checkpoint(self) -> Partial:
        """The state of what is stored now at little cost (whole parts; a local file synced to disk)."""

    @abstractmethod
    def flush(self) -> Partial:
        """Store every byte written so far; the state that covers them all."""

    @abstractmethod
    def recorded(self, state: Partial) -> None:
        """The caller recorded `state`: what only older states needed may go."""

    @abstractmethod
    def discard(self) -> None:
        """Drop what this writer stored beyond its starting state, where that needs doing now."""

    @abstractmethod
    def close(self) -> None:
        """Release what the writer holds open (files); its stored bytes stay."""
