"""runs: ``parent_id``, the run this one ran under (a pipeline's step under its pipeline run, a
stage's run under its step), and ``cache_key``, the hash of a pipeline step's inputs, so that a
rerun with the same inputs finds the step's stored result from the index

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_cache_key"), ["cache_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_cache_key"))
        batch_op.drop_index(batch_op.f("ix_runs_parent_id"))
        batch_op.drop_column("cache_key")
        batch_op.drop_column("parent_id")
