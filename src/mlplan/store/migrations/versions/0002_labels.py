"""labels: batches, imports, annotations, agreement and HLP reports, the relabel queue

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


_JSON = sa.JSON()


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=20), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("selection", sa.String(length=20), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("assignments", sa.Integer(), nullable=False),
        sa.Column("annotators", _JSON, nullable=False),
        sa.Column("estimate", _JSON, nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=True),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_sha256"],
            ["artifacts.sha256"],
            name=op.f("fk_label_batches_artifact_sha256_artifacts"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_label_batches_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_label_batches_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_label_batches_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_batches")),
        sa.UniqueConstraint(
            "project_id", "number", name=op.f("uq_label_batches_project_id_number")
        ),
    )
    with op.batch_alter_table("label_batches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_batches_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "label_issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=1000), nullable=False),
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("details", _JSON, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_label_issues_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_label_issues_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_issues")),
        sa.UniqueConstraint(
            "dataset_version_id",
            "item_id",
            "source",
            name=op.f("uq_label_issues_dataset_version_id_item_id_source"),
        ),
    )
    with op.batch_alter_table("label_issues", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_issues_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "label_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("report", _JSON, nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_label_reports_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_label_reports_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_label_reports_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_reports")),
    )
    with op.batch_alter_table("label_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_reports_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "label_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["label_batches.id"], name=op.f("fk_label_imports_batch_id_label_batches")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_label_imports_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_label_imports_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_label_imports_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_imports")),
    )
    with op.batch_alter_table("label_imports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_imports_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=1000), nullable=False),
        sa.Column("annotator", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("gold", sa.Boolean(), nullable=False),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_annotations_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["import_id"], ["label_imports.id"], name=op.f("fk_annotations_import_id_label_imports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
        sa.UniqueConstraint(
            "dataset_version_id",
            "item_id",
            "annotator",
            "gold",
            name=op.f("uq_annotations_dataset_version_id_item_id_annotator_gold"),
        ),
    )
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_annotations_dataset_version_id"), ["dataset_version_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotations_dataset_version_id"))

    op.drop_table("annotations")
    with op.batch_alter_table("label_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_imports_project_id"))

    op.drop_table("label_imports")
    with op.batch_alter_table("label_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_reports_project_id"))

    op.drop_table("label_reports")
    with op.batch_alter_table("label_issues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_issues_project_id"))

    op.drop_table("label_issues")
    with op.batch_alter_table("label_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_batches_project_id"))

    op.drop_table("label_batches")
