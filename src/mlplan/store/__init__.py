"""The store: the single record of what happened (SQLAlchemy; SQLite or PostgreSQL) and the
content-addressed artifacts beside it."""

from __future__ import annotations

from mlplan.store._artifacts import ArtifactRef, ArtifactStore, sha256_file
from mlplan.store._runs import RunRecorder, code_version, current_user, package_versions
from mlplan.store._store import HEAD_REVISION, STORE_DIR, STORE_URL_ENV, Store, open_store
from mlplan.store._tables import (
    Approval,
    Artifact,
    Base,
    Dataset,
    DatasetVersion,
    Project,
    Run,
    RunIO,
    Split,
    utcnow,
)

__all__ = [
    "HEAD_REVISION",
    "STORE_DIR",
    "STORE_URL_ENV",
    "Approval",
    "Artifact",
    "ArtifactRef",
    "ArtifactStore",
    "Base",
    "Dataset",
    "DatasetVersion",
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
