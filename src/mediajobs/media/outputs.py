"""What follows a processing: the outputs made from the ladder (downloads, storyboard) and when they go.

Each is made from one HLS version and stored under a directory of that version (`downloads/<v>/`,
`storyboard/<v>/`, `images/<v>/`). When a processing swaps a new version in, the old version's outputs go
with its HLS files (after the same grace period), the asset's records of them are reset in the same update,
and the jobs that make the new ones are created in the transaction of the swap (`follow_up`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mediajobs.jobs import lifecycle
from mediajobs.media import downloads, images, storyboards

VERSIONED = ("hls/", downloads.DIR, storyboards.DIR, images.DIR)
# Pipeline steps made from the ladder: they need an HLS stream (in the same pipeline, or already there).
FROM_LADDER = ("mp4", "audio", "storyboard")


def version_dirs(version: str) -> list[str]:
    """The directories of what was made from HLS version `version` (its own hls/ directory aside)."""
    return [f"{d}{version}" for d in VERSIONED[1:]]


def swapped(
    media: Any, hls: dict[str, Any] | None, probe: dict[str, Any], pipeline: Sequence[str]
) -> dict[str, Any]:
    """The asset's columns to change with a swap to `hls`: a new version starts with nothing made from it
    but the downloads its pipeline is about to make (listed, not ready)."""
    was = media.hls["path"] if media.hls else None
    if not hls or hls["path"] == was:
        return {}
    return {"downloads": downloads.planned(hls, probe, pipeline), "storyboard": None, "image_renders": 0}


def follow_up(
    tx: lifecycle.Transaction,
    media_id: str,
    hls: dict[str, Any] | None,
    probe: dict[str, Any] | None,
    changed: dict[str, Any],
    pipeline: Sequence[str],
) -> None:
    """In the swap's transaction: the jobs that make the pipeline's outputs of the asset's (new or same) HLS
    version, and (the same version) its downloads listed as not ready until they are remade."""
    if not hls:
        return
    version = str(hls["path"]).split("/", 1)[1]
    planned = changed.get("downloads")
    if planned is None:
        # The same version: remake what the pipeline asks for in place, listed as not ready meanwhile.
        planned = downloads.planned(hls, probe, pipeline)

        def pending(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for e in planned or []:
                entries = downloads.replace(entries, e)
            return entries

        downloads.update_in(tx.session, media_id, version, pending)
    mp4 = next((e["height"] for e in planned if e["type"] == "mp4"), None)
    audio = any(e["type"] == "audio" for e in planned)
    if mp4 is not None or audio:
        made = {"version": version, "mp4_height": mp4, "audio": audio}
        tx.submit("media.downloads", made, media_id=media_id)
    has_video = any(v.get("height") for v in hls.get("variants", []))
    if "storyboard" in pipeline and has_video:
        tx.submit("media.storyboard", {"version": version}, media_id=media_id)
