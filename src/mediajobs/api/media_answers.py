"""The media JSON the routes answer with: file URLs on this host (with a playback token) and the job ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from sqlalchemy import select

from mediajobs.db.models import Job, Media, MediaCaption, Upload
from mediajobs.db.session import Database
from mediajobs.media import assets, captions, playback, schemas, uploads


def upload_answer(request: Request, upload: Upload) -> schemas.MediaUpload:
    """How far an asset's resumable upload has come (the media JSON's `upload`)."""
    return schemas.MediaUpload(
        url=f"{str(request.base_url).rstrip('/')}/api/v1/uploads/{upload.id}",
        offset=upload.offset,
        length=upload.length,
        progress=round(100.0 * upload.offset / upload.length, 2) if upload.length else 100.0,
        expires_at=upload.expires_at.isoformat().replace("+00:00", "Z"),
    )


def media_answer(
    request: Request,
    media: Media,
    jobs: list[str],
    tracks: Sequence[MediaCaption] = (),
    upload: Upload | None = None,
) -> dict[str, Any]:
    """The asset's JSON; with auth on its file URLs carry a playback token for this asset."""
    token = playback.sign(request.app.state.settings, media.id)
    progress = upload_answer(request, upload) if upload is not None else None
    base_url = str(request.base_url)
    return schemas.public(media, jobs=jobs, base_url=base_url, token=token, captions=tracks, upload=progress)


def jobs_by_media(db: Database, ids: list[str]) -> dict[str, list[str]]:
    """Each asset's job ids, oldest first, in one query."""
    found: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        with db.read() as session:
            for media_id, job_id in session.execute(
                select(Job.media_id, Job.id).where(Job.media_id.in_(ids)).order_by(Job.created_at, Job.id)
            ):
                found[str(media_id)].append(job_id)
    return found


def media_answers(request: Request, db: Database, media: list[Media]) -> list[dict[str, Any]]:
    """The JSON of each asset, with its jobs and caption tracks (and, while it is uploading, its upload's
    progress)."""
    ids = [m.id for m in media]
    jobs, tracks = jobs_by_media(db, ids), captions.by_media(db, ids)
    pending = uploads.by_media(db, [m.id for m in media if m.state == assets.UPLOADING])
    return [media_answer(request, m, jobs[m.id], tracks[m.id], pending.get(m.id)) for m in media]
