"""Caption tracks of an asset: stored as WebVTT beside its stream, listed in its JSON, offered in its master.

Each track is two small objects under the asset's prefix: `captions/<id>.vtt` (the cues, read and cleaned by
`toolkit.subtitles`, with an X-TIMESTAMP-MAP that puts cue time 0 where the segments put the source's time 0)
and `captions/<id>.m3u8` (a subtitles playlist whose one segment is that file). The master playlist is not
rewritten: the API adds the asset's tracks to whatever master it serves (`master_with_captions`), so adding or
removing a track never touches the stream, a reprocess keeps them, and players holding an older master go on.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mediajobs.db.models import Media, MediaCaption, utcnow
from mediajobs.db.session import Database
from mediajobs.errors import Conflict, InvalidParams, NotFound
from mediajobs.jobs import lifecycle
from mediajobs.jobs.hooks import Services
from mediajobs.media import assets, schemas
from mediajobs.storage import Storage
from mediajobs.toolkit import subtitles
from mediajobs.toolkit.hls import playlists
from mediajobs.toolkit.hls.renditions import mpegts_time

MAX_TRACKS = 50
MAX_LABEL_CHARS = 100
# BCP 47 as players use it: a 2-3 letter language, then subtags (en, pt-BR, zh-Hant-TW, sr-Latn).
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}")
VTT_TYPE = "text/vtt; charset=utf-8"


class InvalidTrack(InvalidParams):
    """A caption track's language or label that cannot be used; `field` names the query parameter."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def vtt_path(caption_id: str) -> str:
    return schemas.caption_path(caption_id)


def playlist_path(caption_id: str) -> str:
    return f"captions/{caption_id}.m3u8"


def track_names(language: str, label: str | None) -> tuple[str, str]:
    """(language, label) as stored; InvalidTrack naming the parameter that does not fit."""
    language = language.strip()
    if not LANGUAGE.fullmatch(language):
        raise InvalidTrack(
            "language must be a BCP 47 language tag such as 'en', 'pt-BR' or 'zh-Hant'", field="language"
        )
    text = " ".join((label or "").split())
    if any(not c.isprintable() for c in text):
        raise InvalidTrack("label must be printable text", field="label")
    if len(text) > MAX_LABEL_CHARS:
        raise InvalidTrack(f"label must be at most {MAX_LABEL_CHARS} characters", field="label")
    return language, text or language


def require_ready(media: Media) -> None:
    """Captions go on a ready asset only: Conflict otherwise (its message says why)."""
    if media.state != assets.READY or not media.probe:
        raise Conflict(
            f"media {media.id} is {media.state}; captions can be added once it is ready"
            if media.state != assets.DELETING
            else f"media {media.id} is being deleted"
        )


def add(
    db: Database,
    storage: Storage,
    media_id: str,
    data: bytes,
    *,
    language: str,
    label: str | None,
    charset: str | None = None,
    with_row: Callable[[Session, MediaCaption], None] | None = None,
) -> MediaCaption:
    """Read, clean and store a caption file as a track of a ready asset.

    NotFound, Conflict (not ready, being deleted, too many tracks), InvalidTrack or `subtitles.CaptionError`
    naming the line to fix. `with_row` runs in the transaction that records the track.
    """
    language, label = track_names(language, label)
    media = assets.get_media(db, media_id)
    require_ready(media)
    duration = float((media.probe or {})["duration"])
    cues = subtitles.read(data, charset=charset, duration_s=duration)
    caption = MediaCaption(
        id=str(uuid.uuid4()),
        media_id=media.id,
        language=language,
        label=label,
        cues=len(cues),
        created_at=utcnow(),
    )
    zero = int((media.hls or {}).get("mpegts_zero") or mpegts_time(0.0))
    header = [f"X-TIMESTAMP-MAP=MPEGTS:{zero},LOCAL:00:00:00.000"]
    prefix = assets.prefix(media.id)
    storage.put_bytes(
        prefix + vtt_path(caption.id),
        subtitles.to_webvtt(cues, header=header).encode(),
        content_type=VTT_TYPE,
    )
    playlist = playlists.subtitle_playlist(f"{caption.id}.vtt", duration)
    storage.put_bytes(
        prefix + playlist_path(caption.id), playlist.encode(), content_type="application/vnd.apple.mpegurl"
    )
    try:
        with db.write() as session:
            current = session.get(Media, media.id)
            if current is None:
                raise NotFound(f"media asset {media.id} was deleted")
            require_ready(current)
            tracks = session.scalar(select(func.count()).where(MediaCaption.media_id == media.id)) or 0
            if tracks >= MAX_TRACKS:
                raise Conflict(
                    f"media {media.id} has {tracks} caption tracks, the most it may have; delete one first"
                )
            session.add(caption)
            if with_row is not None:
                session.flush()
                with_row(session, caption)
        # An asset deleted while this was stored: its prefix may have been emptied before these files came.
        current = assets.find_media(db, media.id)
        if current is None or current.state == assets.DELETING:
            raise Conflict(f"media {media.id} is being deleted")
    except BaseException:
        _forget(db, storage, media.id, caption.id)
        raise
    return caption


def _forget(db: Database, storage: Storage, media_id: str, caption_id: str) -> None:
    with db.write() as session:
        session.execute(delete(MediaCaption).where(MediaCaption.id == caption_id))
    for path in (vtt_path(caption_id), playlist_path(caption_id)):
        storage.delete(assets.prefix(media_id) + path)


def get(db: Database, media_id: str, caption_id: str) -> MediaCaption:
    with db.read() as session:
        caption = session.get(MediaCaption, caption_id)
    if caption is None or caption.media_id != media_id:
        raise NotFound(f"media {media_id} has no caption track {caption_id}")
    return caption


def tracks(db: Database, media_id: str) -> list[MediaCaption]:
    return by_media(db, [media_id])[media_id]


def by_media(db: Database, ids: list[str]) -> dict[str, list[MediaCaption]]:
    """Each asset's caption tracks, oldest first, in one query."""
    found: dict[str, list[MediaCaption]] = {i: [] for i in ids}
    if ids:
        with db.read() as session:
            query = select(MediaCaption).where(MediaCaption.media_id.in_(ids))
            for caption in session.scalars(query.order_by(MediaCaption.created_at, MediaCaption.id)):
                found[caption.media_id].append(caption)
    return found


def remove(services: Services, media_id: str, caption_id: str) -> None:
    """Drop a track: it leaves the master at once; its files go after a grace for players still using it."""
    caption = get(services.db, media_id, caption_id)
    cleanup = {
        "paths": [vtt_path(caption.id), playlist_path(caption.id)],
        "not_before": time.time() + services.settings.hls_swap_grace_s,
    }
    with lifecycle.transaction(services, media_id=media_id) as tx:
        tx.session.execute(delete(MediaCaption).where(MediaCaption.id == caption.id))
        tx.submit("media.cleanup", cleanup)


def master_with_captions(db: Database, media: Media, path: str, text: str) -> str:
    """The text of the playlist at `path`: the asset's current master gains its caption tracks."""
    hls = media.hls
    if not hls or path != f"{hls['path']}/{hls['master']}":
        return text
    found = tracks(db, media.id)
    if not found:
        return text
    up = "../" * (hls["path"].count("/") + 1)  # from hls/<version>/ back to the asset's root
    return playlists.with_subtitles(
        text,
        [playlists.SubtitleTrack(c.label, c.language, f"{up}{playlist_path(c.id)}") for c in found],
    )
