"""models: package versions (a new threshold is a new version of the model, never an edit);
approvals: the evaluation a deploy approval overrides

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.drop_constraint("uq_models_project_id_name", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_models_project_id_name_version"), ["project_id", "name", "version"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_models_parent_id_models"), "models", ["parent_id"], ["id"]
        )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.alter_column("version", server_default=None)
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evaluation", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("evaluation")
    op.execute("DELETE FROM models WHERE version > 1")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_constraint("fk_models_parent_id_models", type_="foreignkey")
        batch_op.drop_constraint("uq_models_project_id_name_version", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_models_project_id_name"), ["project_id", "name"]
        )
        batch_op.drop_column("parent_id")
        batch_op.drop_column("version")
