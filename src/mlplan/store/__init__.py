"""The store: the single record of what happened (SQLAlchemy; SQLite or PostgreSQL) and the
content-addressed artifacts beside it."""

from __future__ import annotations

from mlplan.store._artifacts import ArtifactRef, ArtifactStore, sha256_file
from mlplan.store._runs import RunRecorder, code_version, current_user, package_versions
from mlplan.store._store import (
    ARTIFACTS_ENV,
    HEAD_REVISION,
    STORE_DIR,
    STORE_URL_ENV,
    Store,
    open_store,
)
from mlplan.store._tables import (
    Annotation,
    ApiKey,
    Approval,
    Artifact,
    Base,
    Dataset,
    DatasetVersion,
    Deployment,
    LabelBatch,
    LabelImport,
    LabelIssueRecord,
    LabelReport,
    Model,
    ModelReport,
    Project,
    Run,
    RunIO,
    Split,
    utcnow,
)

__all__ = [
    "ARTIFACTS_ENV",
    "HEAD_REVISION",
    "STORE_DIR",
    "STORE_URL_ENV",
    "Annotation",
    "ApiKey",
    "Approval",
    "Artifact",
    "ArtifactRef",
    "ArtifactStore",
    "Base",
    "Dataset",
    "DatasetVersion",
    "Deployment",
    "LabelBatch",
    "LabelImport",
    "LabelIssueRecord",
    "LabelReport",
    "Model",
    "ModelReport",
    "Project",
    "Run",
    "RunIO",
    "RunRecorder",
    "Split",
    "Store",
    "code_version",
    "current_user",
    "open_store",
    "package_versions",
    "sha256_file",
    "utcnow",
]
