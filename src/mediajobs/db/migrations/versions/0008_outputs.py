"""media: downloads (progressive MP4/M4A files made from the ladder), storyboard (sprite sheets and their
WebVTT), poster (the time the thumbnail shows, and whether a person chose it), image_renders (images rendered
on request for the current HLS version, against the per-asset cap)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("downloads", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("storyboard", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("poster", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("image_renders", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_column("image_renders")
        batch_op.drop_column("poster")
        batch_op.drop_column("storyboard")
        batch_op.drop_column("downloads")
