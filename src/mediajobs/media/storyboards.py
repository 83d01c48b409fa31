"""An asset's storyboard: sprite sheets and the WebVTT that maps a time to a tile, for timeline previews.

Made from the current HLS version's smallest rendition (`media.storyboard`) under `storyboard/<version>/`;
a new version (reprocess) supersedes it. The `storyboard` column holds `{"version", "path", "sheets",
"tile_width", "tile_height", "interval_s", "count"}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mediajobs.db.models import Media, utcnow
from mediajobs.db.session import Database
from mediajobs.toolkit.storyboard import SHEET_NAME, VTT_NAME, Layout

DIR = "storyboard/"


def record(version: str, layout: Layout) -> dict[str, Any]:
    return {
        "version": version,
        "path": f"{DIR}{version}",
        "sheets": layout.sheets,
        "tile_width": layout.tile_width,
        "tile_height": layout.tile_height,
        "interval_s": layout.interval_s,
        "count": layout.count,
    }


def store(db: Database, media_id: str, made: dict[str, Any]) -> bool:
    """Make `made` the asset's storyboard, while its version is the asset's HLS version."""
    with db.write() as session:
        media = session.get(Media, media_id, with_for_update=True)
        if media is None or not media.hls or str(media.hls["path"]) != f"hls/{made['version']}":
            return False
        media.storyboard = made
        media.updated_at = utcnow()
        return True


def listed(media: Media, url: Callable[[str], str]) -> dict[str, Any] | None:
    """The `storyboard` of the media JSON (`url` makes a stored path's URL), or None while there is none."""
    board = media.storyboard
    if not board:
        return None
    return {
        "vtt_url": url(f"{board['path']}/{VTT_NAME}"),
        "images": [url(f"{board['path']}/{SHEET_NAME.format(i)}") for i in range(board["sheets"])],
        "tile_width": board["tile_width"],
        "tile_height": board["tile_height"],
        "interval_s": board["interval_s"],
        "count": board["count"],
    }
