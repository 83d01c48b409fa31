"""Resumable upload records: the asset an upload makes, who may write to it, and where it ends.

The database says how many bytes of an upload are stored (`offset`) and the storage's state of those bytes
(`partial`); any API process can continue any upload. A request writes only while it holds the upload's
claim: taken by one conditional update that also checks the offset it brings, renewed while it writes, and
lost when it stays silent for CLAIM_TTL_S. Of two requests racing on one upload exactly one gets the claim.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from mediajobs.db.models import Job, Media, Upload, utcnow
from mediajobs.db.records import parse_id
from mediajobs.db.session import Database
from mediajobs.jobs import lifecycle
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.maintenance import Chore
from mediajobs.media import assets, events, titles
from mediajobs.media.states import PROCESSING, UPLOADING
from mediajobs.storage import Storage, for_process
from mediajobs.storage.partial import Partial

# uploading -> done (its asset is processed); uploading -> ending (terminated, expired, its asset deleted:
# everything is being removed) -> gone (removed; the record says 410 Gone until purged).
ACTIVE = "uploading"
DONE = "done"
ENDING = "ending"
GONE = "gone"
# A writer that has not renewed its claim for this long has lost it (a request stuck on a dead connection).
CLAIM_TTL_S = 30.0
# Writers renew far more often than that, and before every storage write: a claim taken over never meets a
# write of its old holder.
RENEW_EVERY_S = 2.0


@dataclass(frozen=True)
class Refusal:
    """Why a claim was not given: `missing`, `expired` (or terminated), `done`, `offset` (another offset) or
    `locked` (another request writes)."""

    reason: str
    upload: Upload | None


def new_token() -> str:
    return uuid.uuid4().hex


def create(
    db: Database,
    storage: Storage,
    *,
    length: int,
    meta: dict[str, Any],
    filename: str,
    content_type: str,
    pipeline: list[str],
    expiry_s: float,
    claim_for: str | None = None,
) -> Upload:
    """A new upload and its asset (state `uploading`) in one transaction; claimed at once with `claim_for`."""
    media = assets.new_media(
        source={"type": "upload", "filename": filename},
        title=titles.from_filename(filename),
        state=UPLOADING,
        pipeline=pipeline,
    )
    key = assets.original_key(media.id, assets.safe_filename(filename))
    now = utcnow()
    upload = Upload(
        id=str(uuid.uuid4()),
        media_id=media.id,
        state=ACTIVE,
        length=length,
        offset=0,
        key=key,
        partial=storage.begin_partial(key, content_type=content_type, size_hint=length),
        meta={**meta, "filename": filename, "content_type": content_type, "pipeline": pipeline},
        writer=claim_for,
        claimed_at=now if claim_for else None,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(seconds=expiry_s),
    )
    with db.write() as session:
        session.add(media)
        session.add(upload)
    return upload


def find(db: Database, upload_id: str) -> Upload | None:
    canonical = parse_id(upload_id)
    if canonical is None:
        return None
    with db.read() as session:
        return session.get(Upload, canonical)


def _free(now: datetime) -> Any:
    return or_(Upload.writer.is_(None), Upload.claimed_at < now - timedelta(seconds=CLAIM_TTL_S))


def claim(db: Database, upload_id: str, *, offset: int, token: str) -> Upload | Refusal:
    """Take the upload for one request that writes from `offset`; a Refusal says why not."""
    canonical = parse_id(upload_id)
    now = utcnow()
    if canonical is not None:
        with db.write() as session:
            taken = session.execute(
                update(Upload)
                .where(
                    Upload.id == canonical,
                    Upload.state == ACTIVE,
                    Upload.offset == offset,
                    Upload.expires_at > now,
                    _free(now),
                )
                .values(writer=token, claimed_at=now)
            ).rowcount  # type: ignore[attr-defined]
    row = find(db, upload_id)
    if canonical is not None and taken and row is not None:
        return row
    return refusal(row, offset, now)


def refusal(row: Upload | None, offset: int, now: datetime) -> Refusal:
    if row is None:
        return Refusal("missing", None)
    if row.state in (ENDING, GONE) or (row.state == ACTIVE and row.expires_at <= now):
        return Refusal("expired", row)
    if row.offset != offset:
        return Refusal("offset", row)
    if row.state == DONE:
        return Refusal("done", row)
    return Refusal("locked", row)


def claimed(row: Upload, now: datetime | None = None) -> bool:
    """Whether a live request holds the upload now."""
    now = now or utcnow()
    return row.writer is not None and row.claimed_at is not None and row.claimed_at >= now - _ttl()


def _ttl() -> timedelta:
    return timedelta(seconds=CLAIM_TTL_S)


def renew(db: Database, upload_id: str, token: str) -> bool:
    """Keep the claim; False when it is lost (taken over, terminated, expired, the asset deleted)."""
    with db.write() as session:
        return bool(
            session.execute(
                update(Upload)
                .where(Upload.id == upload_id, Upload.writer == token, Upload.state == ACTIVE)
                .values(claimed_at=utcnow())
            ).rowcount  # type: ignore[attr-defined]
        )


def record(db: Database, upload_id: str, token: str, *, partial: Partial, expiry_s: float) -> bool:
    """The claim holder stored bytes up to `partial["size"]`: the new offset, and a later expiry."""
    now = utcnow()
    with db.write() as session:
        return bool(
            session.execute(
                update(Upload)
                .where(Upload.id == upload_id, Upload.writer == token, Upload.state == ACTIVE)
                .values(
                    offset=int(partial["size"]),
                    partial=partial,
                    claimed_at=now,
                    updated_at=now,
                    expires_at=now + timedelta(seconds=expiry_s),
                )
            ).rowcount  # type: ignore[attr-defined]
        )


def release(db: Database, upload_id: str, token: str) -> None:
    with db.write() as session:
        session.execute(
            update(Upload).where(Upload.id == upload_id, Upload.writer == token).values(writer=None)
        )


def complete(services: Services, storage: Storage, upload: Upload, token: str) -> Job | None:
    """All bytes are stored: publish the original and process the asset as a single-request upload would.

    Storage first (finishing is idempotent), then one transaction: the upload done, the asset `processing`
    with its original, and its job. None when the upload or the asset went meanwhile (terminated, deleted).
    """
    size = storage.finish_partial(upload.key, upload.partial)
    meta = upload.meta or {}

    def with_job(session: Session, job: Job) -> None:
        done = session.execute(
            update(Upload)
            .where(Upload.id == upload.id, Upload.writer == token, Upload.state == ACTIVE)
            .values(state=DONE, writer=None, updated_at=utcnow())
        ).rowcount  # type: ignore[attr-defined]
        original = {
            "size": size,
            "content_type": meta.get("content_type"),
            "filename": meta.get("filename") or None,
            "key": upload.key,
        }
        moved = session.execute(
            update(Media)
            .where(Media.id == upload.media_id, Media.state == UPLOADING)
            .values(state=PROCESSING, original=original, updated_at=utcnow())
        ).rowcount  # type: ignore[attr-defined]
        if not (done and moved):
            raise _Gone

    try:
        return lifecycle.submit(
            services,
            kind="media.process",
            params={"pipeline": list(meta.get("pipeline") or assets.DEFAULT_PIPELINE)},
            media_id=upload.media_id,
            with_job=with_job,
        )
    except _Gone:
        return None


class _Gone(Exception):
    """The upload or its asset went while its last bytes were stored."""


def end(db: Database, upload_id: str) -> Upload | None:
    """Terminate an unfinished upload: no request may continue it; None when there is no such upload.

    Its writer (if any) stops at its next renewal; then `take_ending` and `remove` clear it, here or in the
    sweep of any process.
    """
    canonical = parse_id(upload_id)
    if canonical is None:
        return None
    with db.write() as session:
        row = session.get(Upload, canonical)
        if row is None or row.state != ACTIVE:
            return row
        row.state, row.updated_at = ENDING, utcnow()
        session.execute(
            update(Media).where(Media.id == row.media_id).values(state=assets.DELETING, updated_at=utcnow())
        )
    return find(db, upload_id)


def take_ending(db: Database, upload_id: str, token: str) -> Upload | None:
    """Claim an upload being removed once no writer holds it; None while one does (or it is gone)."""
    now = utcnow()
    with db.write() as session:
        taken = session.execute(
            update(Upload)
            .where(Upload.id == upload_id, Upload.state == ENDING, _free(now))
            .values(writer=token, claimed_at=now)
        ).rowcount  # type: ignore[attr-defined]
    return find(db, upload_id) if taken else None


def remove(services: Services, storage: Storage, upload: Upload, token: str) -> None:
    """Remove everything an unfinished upload stored, and its asset; its record stays as `gone` until purged
    (requests for it are told 410 Gone)."""
    db = services.db
    storage.abort_partial(upload.key, upload.partial)
    storage.delete_prefix(assets.prefix(upload.media_id))
    gone = assets.find_media(db, upload.media_id)
    assets.delete_record(db, upload.media_id)
    with db.write() as session:
        session.execute(
            update(Upload)
            .where(Upload.id == upload.id, Upload.writer == token)
            .values(state=GONE, writer=None, updated_at=utcnow())
        )
    if gone is not None:
        events.fire(events.MediaEvent(events.DELETED, gone.id, gone), services)


def end_for_media(db: Database, media_id: str) -> None:
    """An asset being deleted takes its unfinished upload with it: no request may write to it any more."""
    with db.write() as session:
        session.execute(
            update(Upload)
            .where(Upload.media_id == media_id, Upload.state == ACTIVE)
            .values(state=ENDING, updated_at=utcnow())
        )


def sweep(services: Services, storage: Storage) -> dict[str, int]:
    """What the maintenance loop of every process does; each row is claimed first, so processes never collide.

    Expired unfinished uploads and terminated ones whose request did not finish are removed; an upload whose
    last bytes were stored but whose asset was never handed on (its process died) is completed; records of
    finished or removed uploads are purged after another `expiry_s`.
    """
    db, expiry_s, now = services.db, services.settings.upload_expiry_s, utcnow()
    done = {"expired": 0, "removed": 0, "completed": 0, "purged": 0}
    token = new_token()
    with db.write() as session:
        expired = session.execute(
            update(Upload)
            .where(Upload.state == ACTIVE, Upload.expires_at <= now, _free(now))
            .values(state=ENDING, updated_at=now)
        ).rowcount  # type: ignore[attr-defined]
        done["expired"] = int(expired)
        ending = list(session.scalars(select(Upload.id).where(Upload.state == ENDING, _free(now))))
        stalled = list(
            session.scalars(
                select(Upload.id).where(Upload.state == ACTIVE, Upload.offset == Upload.length, _free(now))
            )
        )
    for upload_id in ending:
        row = take_ending(db, upload_id, token)
        if row is not None:
            remove(services, storage, row, token)
            done["removed"] += 1
    for upload_id in stalled:
        row = find(db, upload_id)
        if row is None:
            continue
        taken = claim(db, upload_id, offset=row.length, token=token)
        if isinstance(taken, Upload):
            complete(services, storage, taken, token)
            done["completed"] += 1
    with db.write() as session:
        purged = session.execute(
            delete(Upload).where(
                Upload.state.in_((DONE, GONE)), Upload.updated_at < now - timedelta(seconds=expiry_s)
            )
        ).rowcount  # type: ignore[attr-defined]
        done["purged"] = int(purged)
    return done


def chore(services: Services) -> Chore:
    """The maintenance loop's sweep of uploads (a few times per expiry period, at most every 10 s)."""
    expiry_s = services.settings.upload_expiry_s

    def run() -> None:
        done = sweep(services, for_process(services.settings))
        if any(done.values()):
            logging.getLogger(__name__).info(
                "uploads: %s", ", ".join(f"{n} {k}" for k, n in done.items() if n)
            )

    return Chore("uploads", every_s=min(10.0, max(0.5, expiry_s / 4)), run=run)


def by_media(db: Database, media_ids: list[str]) -> dict[str, Upload]:
    """The unfinished upload of each of these assets (those still `uploading`), in one query."""
    if not media_ids:
        return {}
    with db.read() as session:
        rows = session.scalars(select(Upload).where(Upload.media_id.in_(media_ids), Upload.state == ACTIVE))
        return {row.media_id: row for row in rows}
