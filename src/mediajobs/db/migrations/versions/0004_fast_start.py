"""media: playable_at (fast start), media_chunks (the segment grid of an HLS version being encoded); jobs: the
progress slice a fan-out's children fill (fan_from, fan_to)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 02:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mediajobs.db.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fan_from", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("fan_to", sa.Float(), nullable=True))
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("playable_at", UTCDateTime(), nullable=True))
    op.create_table(
        "media_chunks",
        sa.Column("media_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("first_segment", sa.Integer(), nullable=False),
        sa.Column("durations", sa.JSON(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("sizes", sa.JSON(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("media_id", "version", "index"),
    )


def downgrade() -> None:
    op.drop_table("media_chunks")
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_column("playable_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("fan_to")
        batch_op.drop_column("fan_from")
