"""The maintenance loop (broker watch, outbox relay, reaper, key purge) of every API and worker process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mediajobs.db.models import utcnow
from mediajobs.jobs import lifecycle
from mediajobs.jobs.context import sweep_temp_dirs
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.outbox import BrokerWatch, relay, republish
from mediajobs.jobs.reaper import purge_idempotency_keys, reap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chore:
    """Work of a layer above this one that the loop runs every `every_s` (e.g. removing expired uploads)."""

    name: str
    every_s: float
    run: Callable[[], object]


class Maintenance:
    """Watch the broker and relay every `maintenance_interval_s`, reap every few s, purge keys hourly."""

    def __init__(self, services: Services, *, sweep_temp: bool = False, chores: Sequence[Chore] = ()) -> None:
        self.services = services
        self.db = services.db
        self.settings = services.settings
        # Every process runs them; each must be safe side by side with the same chore in other processes.
        self.chores = list(chores)
        # Only workers write job temp directories, so only they sweep the ones dead workers left.
        self.sweep_temp = sweep_temp
        self.watch = BrokerWatch(self.settings.broker_client_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mediajobs-maintenance", daemon=True)

    def start(self) -> Maintenance:
        # The first look at the broker comes before this process publishes anything: a broker with no record
        # of earlier runs makes every queued job go out again, and a job submitted after start-up would be
        # among them.
        try:
            self.watch_broker()
        except Exception as exc:  # the loop tries again
            log.warning("maintenance: first look at the broker failed (%s); retrying", exc)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def watch_broker(self) -> None:
        """Send every queued job again when the broker restarted or came back (once across processes)."""
        if self.watch.should_republish():
            try:
                sent = republish(self.db, self.services.broker, before=utcnow())
            except Exception:
                self.watch.republish_failed()
                raise
            # Said when there was something to resend: a first start (nothing queued) stays quiet.
            (log.warning if sent else log.debug)(
                "broker back or restarted: republished %d queued job(s) at once", sent
            )

    def tick(self, now: float, last: dict[str, float]) -> None:
        self.watch_broker()
        lifecycle.release_retries(self.services)
        relay(self.db, self.services.broker, republish_after_s=self.settings.republish_after_s)
        reap_every = max(1.0, self.settings.heartbeat_timeout_s / 4)
        if now - last.get("reap", 0.0) >= reap_every:
            last["reap"] = now
            reap(self.services, heartbeat_timeout_s=self.settings.heartbeat_timeout_s)
        if self.sweep_temp and now - last.get("sweep", 0.0) >= reap_every:
            last["sweep"] = now
            swept = sweep_temp_dirs(self.settings.effective_temp_dir)
            if swept:
                log.info("removed %d temp director(ies) left by dead workers", swept)
        if now - last.get("purge", 0.0) >= 3600:
            last["purge"] = now
            purge_idempotency_keys(self.db)
        for chore in self.chores:
            if now - last.get(chore.name, 0.0) >= chore.every_s:
                last[chore.name] = now
                chore.run()

    def _run(self) -> None:
        last: dict[str, float] = {}
        failing = False
        while not self._stop.wait(self.settings.maintenance_interval_s):
            try:
                self.tick(time.monotonic(), last)
                if failing:
                    log.info("maintenance: recovered")
                failing = False
            except Exception as exc:  # database or broker outage: say so once, keep trying
                if not failing:
                    log.warning("maintenance round failed (%s); retrying", exc, exc_info=True)
                failing = True
