"""The chunks of an HLS version being encoded (table media_chunks): planned at once, marked done one by one.

The job that plans a ladder writes one row per chunk of segments (and one, index -1, for the audio
rendition) before any is encoded; each chunk's encoder marks its row done with its segments' sizes. The API
builds growing playlists from them (`livehls`); the join measures bandwidths from their sizes.

One more row, index -2, is there from the moment a version is begun: the renditions cut from the source as
it is read (a standard source's own stream and its AAC audio), which grow segment by segment while they are
published (`faststart`); it is done when they are whole, or when there are none.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mediajobs.db.models import MediaChunk, utcnow
from mediajobs.db.session import Database

AUDIO_ROW = -1
STREAM_ROW = -2


def begin(db: Database, media_id: str, version: str) -> None:
    """The version is being made from now on (media_ended removes what it leaves): its stream row."""
    with db.write() as session:
        mine = (MediaChunk.media_id == media_id, MediaChunk.version == version)
        session.execute(delete(MediaChunk).where(*mine))
        session.add(
            MediaChunk(
                media_id=media_id, version=version, index=STREAM_ROW, first_segment=0, durations=[],
                done=False, sizes={}, updated_at=utcnow(),
            )
        )  # fmt: skip


def stream(
    db: Database,
    media_id: str,
    version: str,
    durations: list[float],
    sizes: dict[str, list[int]],
    *,
    done: bool,
) -> bool:
    """The streamed renditions hold these segments now (all when `done`); False when the row is gone."""
    with db.write() as session:
        moved = session.execute(
            update(MediaChunk)
            .where(
                MediaChunk.media_id == media_id,
                MediaChunk.version == version,
                MediaChunk.index == STREAM_ROW,
            )
            .values(durations=durations, sizes=sizes, done=done, updated_at=utcnow())
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]


def plan(
    db: Database,
    media_id: str,
    version: str,
    spans: Sequence[tuple[int, int]],
    durations: list[float],
    *,
    audio: bool,
) -> None:
    """One row per chunk [first, stop) of the grid (and the audio's, when it is made apart), none done; the
    version's stream row stays as it is."""
    now = utcnow()
    rows = [
        MediaChunk(
            media_id=media_id, version=version, index=i, first_segment=first,
            durations=durations[first:stop], done=False, updated_at=now,
        )
        for i, (first, stop) in enumerate(spans)
    ]  # fmt: skip
    if audio:
        rows.append(
            MediaChunk(
                media_id=media_id, version=version, index=AUDIO_ROW, first_segment=0, durations=[],
                done=False, updated_at=now,
            )
        )  # fmt: skip
    with db.write() as session:
        # The stream row stays: what it lists is published.
        mine = (MediaChunk.media_id == media_id, MediaChunk.version == version)
        session.execute(delete(MediaChunk).where(*mine, MediaChunk.index != STREAM_ROW))
        session.add_all(rows)


def get(db: Database, media_id: str, version: str, index: int) -> MediaChunk | None:
    with db.read() as session:
        return session.get(MediaChunk, (media_id, version, index))


def rows(db: Database, media_id: str, version: str) -> list[MediaChunk]:
    with db.read() as session:
        query = select(MediaChunk).where(MediaChunk.media_id == media_id, MediaChunk.version == version)
        return list(session.scalars(query.order_by(MediaChunk.index)))


def mark_done(db: Database, media_id: str, version: str, index: int, sizes: dict[str, list[int]]) -> bool:
    """Record a chunk as encoded and stored; False when its row is gone (the asset or version was dropped)."""
    with db.write() as session:
        moved = session.execute(
            update(MediaChunk)
            .where(MediaChunk.media_id == media_id, MediaChunk.version == version, MediaChunk.index == index)
            .values(done=True, sizes=sizes, updated_at=utcnow())
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]


def drop(db: Database, media_id: str, version: str) -> None:
    with db.write() as session:
        drop_in(session, media_id, version)


def drop_in(session: Session, media_id: str, version: str) -> None:
    """`drop` in the caller's transaction (the swap that makes the version the asset's: it is whole)."""
    session.execute(delete(MediaChunk).where(MediaChunk.media_id == media_id, MediaChunk.version == version))


def encoded(found: Sequence[MediaChunk]) -> list[MediaChunk]:
    """The rows of chunks of encoded renditions, in grid order."""
    return sorted((r for r in found if r.index >= 0), key=lambda r: r.first_segment)


def playable(found: Sequence[MediaChunk]) -> bool:
    """Whether a player can start: the first chunk and the audio (when made apart) are stored."""
    by_index = {row.index: row for row in found}
    first, audio = by_index.get(0), by_index.get(AUDIO_ROW)
    return first is not None and first.done and (audio is None or audio.done)


def sizes(found: Sequence[MediaChunk]) -> dict[str, list[int]]:
    """Every rendition's segment sizes, in grid order, from done rows."""
    joined: dict[str, list[int]] = {}
    for row in sorted((r for r in found if r.index != STREAM_ROW), key=lambda r: (r.index, r.first_segment)):
        for name, values in (row.sizes or {}).items():
            joined.setdefault(name, []).extend(values)
    return joined


def drop_all(session: Session, media_id: str) -> list[str]:
    """In the caller's transaction: the rows of every HLS version of the asset still being made (or left
    unfinished) go; which versions they were (their files are the caller's to remove: `version_paths`)."""
    query = select(MediaChunk.version).where(MediaChunk.media_id == media_id).distinct()
    found = sorted(session.scalars(query))
    if found:
        session.execute(delete(MediaChunk).where(MediaChunk.media_id == media_id))
    return found


def version_paths(version: str) -> list[str]:
    """What a build of `version` may have stored, relative to the asset: its HLS files, its thumbnail."""
    return [f"hls/{version}", f"thumbnail/{version}.jpg"]
