"""Group commit: many request handlers' inserts written in one transaction by one thread.

SQLite takes one writer at a time, and under load the thread holding the write lock also waits for the GIL;
a single writer thread that commits whatever has queued up turns N lock handoffs and N commits into one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from sqlalchemy.orm import Session

from mediajobs.db.session import Database

log = logging.getLogger(__name__)
Work = Callable[[Session], None]


class BatchWriter:
    """Runs `work(session)` callables in shared transactions; each caller learns its own outcome."""

    def __init__(self, db: Database, *, max_batch: int = 256) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[Work, Future[None]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mediajobs-batch-writer", daemon=True)
        self._thread.start()

    async def write(self, work: Work) -> None:
        future: Future[None] = Future()
        self._queue.put((work, future))
        await asyncio.wrap_future(future)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.db.write() as session:
                    for work, _ in batch:
                        work(session)
            except Exception:
                # One bad item (a duplicate key, say) must not fail its neighbours: write them one by one.
                self._one_by_one(batch)
            else:
                for _, future in batch:
                    future.set_result(None)

    def _one_by_one(self, batch: list[tuple[Work, Future[None]]]) -> None:
        for work, future in batch:
            try:
                with self.db.write() as session:
                    work(session)
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)
