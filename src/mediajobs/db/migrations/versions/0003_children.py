"""jobs: fan-out children (parent, weight) and their parents' bookkeeping

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=36), nullable=True))
        # Existing rows are no one's children: weight 1 like every new job.
        batch_op.add_column(sa.Column("weight", sa.Float(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("children_total", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("join_kind", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("fan_phase", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_jobs_parent_state", ["parent_id", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_parent_state")
        batch_op.drop_column("fan_phase")
        batch_op.drop_column("join_kind")
        batch_op.drop_column("children_total")
        batch_op.drop_column("weight")
        batch_op.drop_column("parent_id")
