"""Growing playlists: what the API serves for a rendition of an asset that plays while it is still encoding.

A rendition's playlist lists the segments of its chunks done so far, in grid order, as an EVENT playlist
(players may not seek past its end, and refresh it); once every chunk is done it is complete. It is built
from the database on each request, so no two encoders ever race on a stored playlist, and it only grows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mediajobs.db.models import Media, MediaChunk
from mediajobs.db.session import Database
from mediajobs.media.chunks import AUDIO_ROW, rows
from mediajobs.toolkit.hls.playlists import PLAYLIST, media_playlist


def growing_playlist(found: Sequence[MediaChunk]) -> str:
    """A video rendition's playlist as far as its chunks are done, in order; complete once all are."""
    video = sorted((r for r in found if r.index != AUDIO_ROW), key=lambda r: r.first_segment)
    every = [d for row in video for d in row.durations]
    target = max(1, math.ceil(max(every, default=1.0) - 0.001))
    available: list[float] = []
    for row in video:
        if not row.done:
            break
        available += row.durations
    return media_playlist(available, target_duration=target, complete=len(available) == len(every))


def render(db: Database, media: Media, path: str) -> str | None:
    """The text the API serves for `path` of an asset still encoding, or None to serve the stored file.

    Only the playlist of a video rendition that is not `ready` yet is built here.
    """
    hls: dict[str, Any] | None = media.hls
    if not hls or not path.startswith(f"{hls['path']}/") or not path.endswith(f"/{PLAYLIST}"):
        return None
    relative = path[len(hls["path"]) + 1 :]
    variant = next((v for v in hls.get("variants", []) if v.get("path") == relative), None)
    if variant is None or variant.get("ready", True):
        return None
    found = rows(db, media.id, hls["path"].rsplit("/", 1)[-1])
    return growing_playlist(found) if found else None
