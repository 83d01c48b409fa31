"""An asset's downloads: its original, progressive MP4s of its rungs and an M4A of its sound.

The MP4s and the M4A are made from the current HLS version (`media.downloads`, remuxed, never encoded) and
live under `downloads/<version>/`; a new version (reprocess) supersedes them. The asset's `downloads` column
lists those made or being made: `{"type", "height", "width", "label", "path", "content_type", "size",
"ready", "version"}`. The original is listed from the asset's `original`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from mediajobs.db.models import Media, utcnow
from mediajobs.db.session import Database
from mediajobs.errors import Conflict, InvalidField
from mediajobs.media import assets
from mediajobs.toolkit.downloads import M4A_TYPE, MP4_TYPE

Made = Literal["mp4", "audio"]
DIR = "downloads/"


def entry(version: str, kind: Made, *, height: int | None = None, width: int | None = None) -> dict[str, Any]:
    """A download being made of `version`: an MP4 of the rung `height` pixels high, or the audio."""
    if kind == "mp4":
        label = f"{min(width, height) if width and height else height}p"  # the rung's name, as in hls/
        return {
            "type": "mp4",
            "height": height,
            "width": width,
            "label": label,
            "path": f"{DIR}{version}/{label}.mp4",
            "content_type": MP4_TYPE,
            "size": None,
            "ready": False,
            "version": version,
        }
    return {
        "type": "audio",
        "height": None,
        "width": None,
        "label": "audio",
        "path": f"{DIR}{version}/audio.m4a",
        "content_type": M4A_TYPE,
        "size": None,
        "ready": False,
        "version": version,
    }


def planned(
    hls: dict[str, Any] | None, probe: dict[str, Any] | None, pipeline: Sequence[str]
) -> list[dict[str, Any]]:
    """What the pipeline makes of a new HLS version: an MP4 of its top rung, an M4A of its sound."""
    if not hls:
        return []
    version = str(hls["path"]).split("/", 1)[1]
    made = []
    video = [v for v in hls.get("variants", []) if v.get("height")]
    if "mp4" in pipeline and video:
        made.append(entry(version, "mp4", height=video[0]["height"], width=video[0].get("width")))
    if "audio" in pipeline and (probe or {}).get("audio_codec"):
        made.append(entry(version, "audio"))
    return made


def requested(media: Media, kind: Made, height: int | None) -> dict[str, Any]:
    """The download a request asks of a ready asset: an MP4 of the rung `height` pixels high (default: the
    top one), or the audio. InvalidField naming the field, or Conflict when there is nothing to make it of."""
    if not media.hls:
        raise Conflict(f"media {media.id} has no HLS stream to make downloads of; reprocess it with hls")
    version = str(media.hls["path"]).split("/", 1)[1]
    if kind == "audio":
        if height is not None:
            raise InvalidField("height", "the audio download has no height; leave it out")
        if not (media.probe or {}).get("audio_codec"):
            raise Conflict(f"media {media.id} has no audio")
        return entry(version, "audio")
    rungs = [v for v in media.hls.get("variants", []) if v.get("height")]
    if not rungs:
        raise Conflict(f"media {media.id} has no video; ask for the audio download")
    chosen = rungs[0] if height is None else next((v for v in rungs if v["height"] == height), None)
    if chosen is None:
        heights = ", ".join(str(v["height"]) for v in rungs)
        raise InvalidField("height", f"the ladder has no {height} px high rung; it has {heights}")
    return entry(version, "mp4", height=chosen["height"], width=chosen.get("width"))


def update(db: Database, media_id: str, version: str, change: Any) -> bool:
    """Apply `change(entries) -> entries` to the asset's downloads while `version` is its HLS version.

    The row is locked (SELECT ... FOR UPDATE; SQLite writes are serial), so jobs adding downloads side by
    side never lose each other's entries. False when the asset is gone or has moved to another version.
    """
    with db.write() as session:
        return update_in(session, media_id, version, change)


def update_in(session: Session, media_id: str, version: str, change: Any) -> bool:
    """`update` in the caller's transaction."""
    media = session.get(Media, media_id, with_for_update=True, populate_existing=True)
    if media is None or not media.hls or str(media.hls["path"]) != f"hls/{version}":
        return False
    media.downloads = change([dict(e) for e in media.downloads or []])
    flag_modified(media, "downloads")
    media.updated_at = utcnow()
    return True


def replace(entries: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """`entries` with `new` in place of any entry of the same file, best rung first, the audio last."""
    kept = [e for e in entries if e["path"] != new["path"]]
    return sorted([*kept, new], key=lambda e: (e["type"] == "audio", -(e.get("height") or 0)))


def listed(media: Media, url: Callable[[str], str]) -> list[dict[str, Any]]:
    """The `downloads` of the media JSON (`url` makes a stored path's URL): the original first, then what
    was made from the ladder."""
    found = []
    if media.original and media.original.get("key"):
        path = media.original["key"].removeprefix(assets.prefix(media.id))
        found.append(
            {
                "type": "original",
                "height": (media.probe or {}).get("height"),
                "content_type": media.original.get("content_type"),
                "size": media.original.get("size"),
                "url": url(path),
                "ready": True,
            }
        )
    for e in media.downloads or []:
        ready = bool(e.get("ready"))
        found.append(
            {
                "type": e["type"],
                "height": e.get("height"),
                "content_type": e["content_type"],
                "size": e.get("size"),
                # A URL only once the file exists: until then it would answer 404.
                "url": url(e["path"]) if ready else None,
                "ready": ready,
            }
        )
    return found


def filename(media: Media, path: str) -> str:
    """The name a file of the asset is saved under: `holiday.mp4` (the original), `holiday-720p.mp4`,
    `holiday.m4a`; other files keep their own name."""
    stem = _stem(media)
    if media.original and path == media.original.get("key", "").removeprefix(assets.prefix(media.id)):
        return media.original.get("filename") or PurePosixPath(path).name
    for e in media.downloads or []:
        if e["path"] == path:
            return f"{stem}.m4a" if e["type"] == "audio" else f"{stem}-{e['label']}.mp4"
    return PurePosixPath(path).name


def _stem(media: Media) -> str:
    name = (media.original or {}).get("filename") or ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    stem = "".join(c for c in stem if c.isprintable()).strip(" .")
    return stem[:150] or f"media-{media.id[:8]}"


def attachment(name: str) -> str:
    """Content-Disposition for saving a file as `name` (RFC 6266, with RFC 5987 UTF-8 for any character)."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip() or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
