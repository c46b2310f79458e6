"""monitor_windows: each family of a monitoring window (mlplan monitor), per deployment,
package version and slice value, with its metrics and samples

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("deployment", sa.String(length=100), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slice", sa.String(length=300), nullable=False),
        sa.Column("family", sa.String(length=20), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_monitor_windows_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_monitor_windows_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_windows")),
    )
    with op.batch_alter_table("monitor_windows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_monitor_windows_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_monitor_windows_window_start"), ["window_start"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("monitor_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_windows_window_start"))
        batch_op.drop_index(batch_op.f("ix_monitor_windows_project_id"))
    op.drop_table("monitor_windows")
