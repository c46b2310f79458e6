"""models: trained models with their packages and parity checks, and model reports

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


_JSON = sa.JSON()


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("report", _JSON, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_model_reports_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_model_reports_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_reports")),
    )
    with op.batch_alter_table("model_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_reports_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("family", sa.String(length=20), nullable=False),
        sa.Column("task", sa.String(length=30), nullable=False),
        sa.Column("baseline", sa.Boolean(), nullable=False),
        sa.Column("split_id", sa.Integer(), nullable=False),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("features", _JSON, nullable=False),
        sa.Column("metrics", _JSON, nullable=False),
        sa.Column("package", _JSON, nullable=False),
        sa.Column("parity", _JSON, nullable=False),
        sa.Column("compute", _JSON, nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_models_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_models_run_id_runs")),
        sa.ForeignKeyConstraint(
            ["split_id"], ["splits.id"], name=op.f("fk_models_split_id_splits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_models_project_id_name")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_project_id"))

    op.drop_table("models")
    with op.batch_alter_table("model_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_reports_project_id"))

    op.drop_table("model_reports")
