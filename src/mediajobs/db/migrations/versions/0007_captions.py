"""media_captions: the caption tracks of each asset (the WebVTT files themselves are in the storage)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mediajobs.db.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_captions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("media_id", sa.String(length=36), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("cues", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_media_captions_media_id", "media_captions", ["media_id"])


def downgrade() -> None:
    op.drop_index("ix_media_captions_media_id", table_name="media_captions")
    op.drop_table("media_captions")
