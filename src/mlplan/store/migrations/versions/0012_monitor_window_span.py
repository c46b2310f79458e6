"""monitor_windows: an index on (project_id, deployment, family, window_start), so that the
newest windows of one family of one deployment (the Monitoring page's span, a page back) are
found from the index, not by reading every stored window

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_windows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_monitor_windows_span",
            ["project_id", "deployment", "family", "window_start"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("monitor_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_windows_span")
