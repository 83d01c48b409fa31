"""jobs: mask and remove-frames jobs keep their request body as params (no `source_id`)

The params of a `media.mask` or `media.remove_frames` job are now exactly what `POST .../mask` or
`.../remove-frames` took; the source is the derived asset's parent. Rows written before carry a
`source_id` the kinds' models would refuse, so a job queued (or retried) across the upgrade would fail.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

KINDS = ("media.mask", "media.remove_frames")
jobs = sa.table(
    "jobs",
    sa.column("id", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("params", sa.JSON()),
    sa.column("media_id", sa.String()),
)
media = sa.table("media", sa.column("id", sa.String()), sa.column("parent_id", sa.String()))


def _rewrite(change: Any) -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(jobs.c.id, jobs.c.params, media.c.parent_id)
        .select_from(jobs.outerjoin(media, media.c.id == jobs.c.media_id))
        .where(jobs.c.kind.in_(KINDS))
    ).all()
    for job_id, params, parent_id in rows:
        new = change(dict(params or {}), parent_id)
        if new is not None:
            conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(params=new))


def _without_source(params: dict[str, Any], parent_id: str | None) -> dict[str, Any] | None:
    if "source_id" not in params:
        return None
    params.pop("source_id")
    return params


def _with_source(params: dict[str, Any], parent_id: str | None) -> dict[str, Any] | None:
    # The older kinds know no `pipeline` param (the asset holds it) and need the source's id.
    params.pop("pipeline", None)
    return {"source_id": parent_id or "", **params}


def upgrade() -> None:
    _rewrite(_without_source)


def downgrade() -> None:
    _rewrite(_with_source)
