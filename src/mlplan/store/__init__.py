"""The store: the single record of what happened (SQLAlchemy; SQLite or PostgreSQL) and the
content-addressed artifacts beside it."""

from __future__ import annotations

from mlplan._deprecated import moved_names as _moved_names
from mlplan.store._artifacts import (
    ArtifactRef,
    ArtifactStore,
    StoredFile,
    package_sha256,
    sha256_file,
)
from mlplan.store._crashed import (
    CRASHED,
    CrashedRun,
    close_crashed_runs,
    crashed_runs,
    process_gone,
    process_identity,
)
from mlplan.store._references import ArtifactReferences, referenced_artifacts
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
    AnnotationRecord,
    ApiKeyRecord,
    ApprovalRecord,
    ArtifactRecord,
    Base,
    DatasetRecord,
    DatasetVersionRecord,
    DeploymentRecord,
    LabelBatchRecord,
    LabelImportRecord,
    LabelIssueRecord,
    LabelReportRecord,
    ModelRecord,
    ModelReportRecord,
    ProjectRecord,
    RunIORecord,
    RunRecord,
    SplitRecord,
    utcnow,
)

__all__ = [
    "ARTIFACTS_ENV",
    "CRASHED",
    "HEAD_REVISION",
    "STORE_DIR",
    "STORE_URL_ENV",
    "AnnotationRecord",
    "ApiKeyRecord",
    "ApprovalRecord",
    "ArtifactRecord",
    "ArtifactRef",
    "ArtifactReferences",
    "ArtifactStore",
    "Base",
    "CrashedRun",
    "DatasetRecord",
    "DatasetVersionRecord",
    "DeploymentRecord",
    "LabelBatchRecord",
    "LabelImportRecord",
    "LabelIssueRecord",
    "LabelReportRecord",
    "ModelRecord",
    "ModelReportRecord",
    "ProjectRecord",
    "RunIORecord",
    "RunRecord",
    "RunRecorder",
    "SplitRecord",
    "Store",
    "StoredFile",
    "close_crashed_runs",
    "code_version",
    "crashed_runs",
    "current_user",
    "open_store",
    "package_sha256",
    "package_versions",
    "process_gone",
    "process_identity",
    "referenced_artifacts",
    "sha256_file",
    "utcnow",
]

__getattr__ = _moved_names(
    __name__,
    {
        "Project": "mlplan.store.ProjectRecord",
        "Artifact": "mlplan.store.ArtifactRecord",
        "Run": "mlplan.store.RunRecord",
        "RunIO": "mlplan.store.RunIORecord",
        "Dataset": "mlplan.store.DatasetRecord",
        "DatasetVersion": "mlplan.store.DatasetVersionRecord",
        "Split": "mlplan.store.SplitRecord",
        "Approval": "mlplan.store.ApprovalRecord",
        "LabelBatch": "mlplan.store.LabelBatchRecord",
        "LabelImport": "mlplan.store.LabelImportRecord",
        "Annotation": "mlplan.store.AnnotationRecord",
        "LabelReport": "mlplan.store.LabelReportRecord",
        "Model": "mlplan.store.ModelRecord",
        "ModelReport": "mlplan.store.ModelReportRecord",
        "ApiKey": "mlplan.store.ApiKeyRecord",
        "Deployment": "mlplan.store.DeploymentRecord",
    },
)
