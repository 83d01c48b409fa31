"""Asset events: `media.ready` and `media.failed` when an asset reaches that state, `media.deleted` once it is
gone. `assets` and the delete kind fire them; the layers above listen (webhooks registers its emission when it
is imported). Listeners get the event and the process's Services; one that fails is logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from mediajobs.db.models import Media
from mediajobs.jobs.hooks import Services

log = logging.getLogger(__name__)

READY, FAILED, DELETED = "media.ready", "media.failed", "media.deleted"


@dataclass(frozen=True)
class MediaEvent:
    """What happened to which asset; `media` is its record as it was just before it went (deleted only)."""

    type: str
    media_id: str
    media: Media | None = None


Listener = Callable[[MediaEvent, Services], None]
_listeners: list[Listener] = []


def on_media_event(listener: Listener) -> Listener:
    """Register `listener(event, services)`, called for every asset event."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def fire(event: MediaEvent, services: Services) -> None:
    for listener in _listeners:
        try:
            listener(event, services)
        except Exception:
            log.exception("listener %s failed for %s of media %s", listener, event.type, event.media_id)
