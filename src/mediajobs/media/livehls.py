"""Growing playlists: what the API serves for a rendition of an asset that plays while it is still being made.

A rendition's playlist lists the segments stored so far, in grid order, as an EVENT playlist (players may
not seek past its end, and refresh it); once every segment is stored it is complete. It is built from the
database on each request, so no two writers ever race on a stored playlist, and it only grows:

- an encoded rendition lists the segments of its chunks done so far (`media_chunks` rows 0..);
- the renditions made from the source as it is read (a standard source's own stream and its AAC audio, a
  lead's first segment, an audio rendition being encoded) list the segments of the version's stream row
  (-2), which their maker extends as it stores them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mediajobs.db.models import Media, MediaChunk
from mediajobs.db.session import Database
from mediajobs.media.chunks import STREAM_ROW, encoded, rows
from mediajobs.toolkit.hls.grid import COPY_TARGET_S
from mediajobs.toolkit.hls.ladder import AUDIO
from mediajobs.toolkit.hls.playlists import PLAYLIST, media_playlist


def growing_playlist(found: Sequence[MediaChunk], promised: int = 0) -> str:
    """A video rendition's playlist as far as its chunks are done, in order; complete once all are.

    `promised`: the target duration published with the version (`Build.record`), kept to the end.
    """
    video = encoded(found)
    every = [d for row in video for d in row.durations]
    target = max(1, promised, math.ceil(max(every, default=1.0) - 0.001))
    available: list[float] = []
    for row in video:
        if not row.done:
            break
        available += row.durations
    return media_playlist(available, target_duration=target, complete=len(available) == len(every))


def streamed_playlist(row: MediaChunk, promised: int = COPY_TARGET_S) -> str:
    """A rendition made as the source is read: the segments stored so far, with the promised target."""
    return media_playlist(row.durations, target_duration=promised, complete=False)


def render(db: Database, media: Media, path: str) -> str | None:
    """The text the API serves for `path` of an asset still being made, or None to serve the stored file.

    Only the playlist of a rendition that is not whole yet is built here.
    """
    hls: dict[str, Any] | None = media.hls
    if not hls or not path.startswith(f"{hls['path']}/") or not path.endswith(f"/{PLAYLIST}"):
        return None
    relative = path[len(hls["path"]) + 1 :]
    name = relative.split("/", 1)[0]
    variant = next((v for v in hls.get("variants", []) if v.get("path") == relative), None)
    if name != AUDIO and (variant is None or variant.get("ready", True)):
        return None
    found = rows(db, media.id, hls["path"].rsplit("/", 1)[-1])
    stream = next((r for r in found if r.index == STREAM_ROW), None)
    promised = int(hls.get("target") or 0)
    if stream is not None and not stream.done and name in (stream.sizes or {}):
        return streamed_playlist(stream, promised or COPY_TARGET_S)
    if name == AUDIO:
        return None  # stored whole, or not published yet
    return growing_playlist(found, promised) if encoded(found) else None
