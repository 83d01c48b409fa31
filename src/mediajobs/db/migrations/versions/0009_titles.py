"""media: title (what people call an asset) and title_search (the same case-folded, what ?q= searches),
filled for existing assets from their file name, page title or URL

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 07:00:00.000000
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BATCH = 500
# The rules of media/titles.py as they were when this migration was written (a migration never changes).
_HIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2064\u2066-\u2069\ufeff]"
)


def _fit(text: str) -> str:
    text = re.sub(r"\s+", " ", _HIDDEN.sub(" ", unicodedata.normalize("NFC", text))).strip()
    return (text[:199].rstrip() + "…" if len(text) > 200 else text) or "Untitled"


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return _fit(stem if dot and stem and 0 < len(ext) <= 5 and ext.isalnum() else base)


def _title(source: dict[str, Any], original: dict[str, Any] | None) -> str:
    if source.get("title"):
        return _fit(str(source["title"]))
    if original and original.get("filename"):
        return _stem(str(original["filename"]))
    if source.get("filename"):
        return _stem(str(source["filename"]))
    if source.get("url"):
        parts = urlsplit(str(source["url"]))
        last = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
        return _stem(last) if last else _fit(parts.hostname or str(source["url"]))
    if source.get("type") in ("mask", "remove_frames", "clip"):
        return _fit(f"{source['type'].replace('_', ' ')} of {str(source.get('parent_id'))[:8]}")
    return "Untitled"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title", sa.String(200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("title_search", sa.String(1000), nullable=False, server_default=""))
    bind = op.get_bind()
    media = sa.table(
        "media",
        sa.column("id", sa.String),
        sa.column("source", sa.JSON),
        sa.column("original", sa.JSON),
        sa.column("title", sa.String),
        sa.column("title_search", sa.String),
    )
    last = ""
    while True:
        rows = bind.execute(
            sa.select(media.c.id, media.c.source, media.c.original)
            .where(media.c.id > last)
            .order_by(media.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            title = _title(_json(row.source) or {}, _json(row.original))
            bind.execute(
                media.update().where(media.c.id == row.id).values(title=title, title_search=title.casefold())
            )
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_column("title_search")
        batch_op.drop_column("title")
