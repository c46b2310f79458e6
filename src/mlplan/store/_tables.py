"""The store's tables (SQLAlchemy 2 ORM), shared by SQLite and PostgreSQL.

Each later stage adds its tables here and a migration under ``migrations/versions``; a test
checks that the migrations produce exactly this metadata.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AlertRecord",
    "AnnotationRecord",
    "ApiKeyRecord",
    "ApprovalRecord",
    "ArtifactRecord",
    "Base",
    "DatasetRecord",
    "DatasetVersionRecord",
    "LabelBatchRecord",
    "LabelImportRecord",
    "LabelIssueRecord",
    "LabelReportRecord",
    "ModelRecord",
    "ModelReportRecord",
    "MonitorWindowRecord",
    "ProjectRecord",
    "RolloutEventRecord",
    "RolloutLeaseRecord",
    "RolloutRecord",
    "RunIORecord",
    "RunRecord",
    "SplitRecord",
    "WebhookDeliveryRecord",
    "dialect_insert",
    "utcnow",
]

# Named constraints, so migrations can alter them on both dialects.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Plain JSON on both backends: PostgreSQL's JSONB would reorder keys (profiles keep column order).
JSONType = JSON()


def utcnow() -> dt.datetime:
    """Now, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def dialect_insert(bind: Any, table: Any) -> Any:
    """An INSERT into ``table`` that supports ``on_conflict_do_nothing`` on the dialect of
    ``bind`` (a session or an engine)."""
    name = (bind.get_bind() if hasattr(bind, "get_bind") else bind).dialect.name
    # The dialects are imported on use: PostgreSQL's costs a command's start-up otherwise.
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use mlplan.store.utcnow()")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        stamp: dt.datetime = value
        return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class ProjectRecord(Base):
    """A project, known by the plan's ``project.key`` (so renaming it keeps its records, and
    two teams' projects of the same name stay apart in one PostgreSQL store)."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ArtifactRecord(Base):
    """A content-addressed file under ``.mlplan/artifacts``."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RunRecord(Base):
    """One execution of a command that created something: the unit of lineage."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    job: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    code_version: Mapped[str | None] = mapped_column(String(100))
    packages: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    user: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    parent_id: Mapped[str | None] = mapped_column(String(36), index=True)
    """The run this one ran under: a pipeline step's pipeline run, a stage's run's step."""
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True)
    """A pipeline step's key: the hash of its inputs, parameters and code version."""

    ios: Mapped[list[RunIORecord]] = relationship(back_populates="run", order_by="RunIORecord.id")


class RunIORecord(Base):
    """An input or output of a run: a store entity by reference, with the hash of its bytes."""

    __tablename__ = "run_ios"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(10))  # "input" | "output"
    kind: Mapped[str] = mapped_column(String(50))  # "file" | "dataset_version" | "split" | ...
    ref: Mapped[str] = mapped_column(String(1000), index=True)
    sha256: Mapped[str | None] = mapped_column(String(64))

    run: Mapped[RunRecord] = relationship(back_populates="ios")


class DatasetRecord(Base):
    """A named dataset of a project; its versions hold the data."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    versions: Mapped[list[DatasetVersionRecord]] = relationship(
        back_populates="dataset", order_by="DatasetVersionRecord.version"
    )


class DatasetVersionRecord(Base):
    """One version of a dataset, identified by the hash of its content."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version"),
        UniqueConstraint("dataset_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(20))
    source_path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    profile: Mapped[dict[str, Any]] = mapped_column(JSONType)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    snapshot_sha256: Mapped[str | None] = mapped_column(ForeignKey("artifacts.sha256"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    dataset: Mapped[DatasetRecord] = relationship(back_populates="versions")


class SplitRecord(Base):
    """A train/valid/test assignment of one dataset version's rows, with its leakage checks."""

    __tablename__ = "splits"
    __table_args__ = (UniqueConstraint("dataset_version_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType)
    leakage: Mapped[dict[str, Any]] = mapped_column(JSONType)
    passed: Mapped[bool] = mapped_column(Boolean)
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    dataset_version: Mapped[DatasetVersionRecord] = relationship()


class ApprovalRecord(Base):
    """A sign-off: who, in which role, approved which gate, when; and, if it was withdrawn,
    who revoked it, when and why."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    gate: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(100))
    by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(String(1000))
    # The evaluation (its run's id) a deploy approval overrides: it clears that one only.
    evaluation: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A revoked sign-off stays on the record; it no longer counts.
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    revoke_note: Mapped[str | None] = mapped_column(Text)


class LabelBatchRecord(Base):
    """Items sent out for labeling: who labels what, and what it should cost."""

    __tablename__ = "label_batches"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    number: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(20))
    format: Mapped[str] = mapped_column(String(20))
    selection: Mapped[str] = mapped_column(String(20))
    items: Mapped[int] = mapped_column(Integer)
    assignments: Mapped[int] = mapped_column(Integer)
    annotators: Mapped[list[str]] = mapped_column(JSONType)
    estimate: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Set for batches that leave the company: their files carry opaque item keys made with it.
    salt: Mapped[str | None] = mapped_column(String(64))
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LabelImportRecord(Base):
    """One imported file of annotations, with what was found wrong in it."""

    __tablename__ = "label_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("label_batches.id"))
    source_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(20))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnnotationRecord(Base):
    """One label given by one annotator to one item of a dataset version."""

    __tablename__ = "annotations"
    # An expert may give both a regular and a gold label to the same item.
    __table_args__ = (UniqueConstraint("dataset_version_id", "item_id", "annotator", "gold"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("label_imports.id"))
    item_id: Mapped[str] = mapped_column(String(1000))  # image paths can be long
    annotator: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(200))
    gold: Mapped[bool] = mapped_column(Boolean, default=False)
    labeled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    seconds: Mapped[float | None] = mapped_column(Float)


class LabelReportRecord(Base):
    """A measurement over a dataset version's annotations: agreement, or HLP."""

    __tablename__ = "label_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    kind: Mapped[str] = mapped_column(String(20))  # "agreement" | "hlp"
    report: Mapped[dict[str, Any]] = mapped_column(JSONType)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LabelIssueRecord(Base):
    """An item in the relabel queue: why it is there, and what became of it."""

    __tablename__ = "label_issues"
    __table_args__ = (UniqueConstraint("dataset_version_id", "item_id", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    item_id: Mapped[str] = mapped_column(String(1000))  # image paths can be long
    source: Mapped[str] = mapped_column(String(30))  # "disagreement" | "confident_learning"
    score: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(20), default="open")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelRecord(Base):
    """A package version of a trained model: its family, the split it learned from, its
    metrics, and its package (ONNX graph, signature, metadata) with the parity check that let
    it be registered. A package never changes: a new decision threshold is a new version
    (``version`` 2, 3 ...), derived from ``parent_id``, with the same name."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    family: Mapped[str] = mapped_column(String(20))
    task: Mapped[str] = mapped_column(String(30))
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    split_id: Mapped[int] = mapped_column(ForeignKey("splits.id"))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    features: Mapped[dict[str, Any]] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    package: Mapped[dict[str, Any]] = mapped_column(JSONType)
    parity: Mapped[dict[str, Any]] = mapped_column(JSONType)
    compute: Mapped[dict[str, Any]] = mapped_column(JSONType)  # size, latency, throughput
    seconds: Mapped[float] = mapped_column(Float)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelReportRecord(Base):
    """A measurement over models: the comparison with baselines (later: evaluations)."""

    __tablename__ = "model_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))  # "comparison"
    report: Mapped[dict[str, Any]] = mapped_column(JSONType)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKeyRecord(Base):
    """An API key of the serving path: who holds it, its roles, and the SHA-256 of its secret
    (never the secret itself). Keys are 256-bit random, so a fast hash is safe and keeps
    checking a request cheap."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSONType)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DeploymentRecord(Base):
    """A named place where a model serves (``production`` unless named otherwise): which
    model is there now, since when and by whom. Each change is also a ``deploy`` run, so the
    history and the lineage (model → deployment) live with the other runs."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    mode: Mapped[str] = mapped_column(String(20))  # realtime | batch, from the plan
    target: Mapped[str] = mapped_column(String(20))  # cloud | edge | browser
    deployed_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolloutRecord(Base):
    """A deployment's move from its stable model to a candidate (``mlplan deploy``): the
    strategy, where the state machine stands (``mlplan.rollout``), the candidate's share of
    traffic in percent (the stable model takes the rest) and the canary step reached.

    ``active`` is true while the rollout can still move and NULL once it ended (promoted,
    aborted, rolled back): the unique constraint on (deployment, active) lets a deployment
    hold at most one active rollout, on SQLite and PostgreSQL alike (NULLs never collide).
    """

    __tablename__ = "rollouts"
    __table_args__ = (UniqueConstraint("deployment_id", "active"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), index=True)
    stable_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    strategy: Mapped[str] = mapped_column(String(20))  # shadow | canary | blue_green | replace
    state: Mapped[str] = mapped_column(String(20))
    weight: Mapped[float] = mapped_column(Float)  # the candidate's share, 0-100
    step: Mapped[int] = mapped_column(Integer)  # canary steps reached, 0 before the first
    steps: Mapped[list[float]] = mapped_column(JSONType)  # the weights of each step
    active: Mapped[bool | None] = mapped_column(Boolean)
    started_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RolloutEventRecord(Base):
    """One transition of a rollout, written in the transaction that made it: the action,
    the states before and after (``from_state`` NULL when it began), the weight and step
    after, who made it (a person or the controller), why, and the figures that decided it."""

    __tablename__ = "rollout_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    weight: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    actor_kind: Mapped[str] = mapped_column(String(20))  # person | controller
    reason: Mapped[str | None] = mapped_column(Text)
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolloutLeaseRecord(Base):
    """Which controller drives a deployment's rollouts (``mlplan rollout run``, ``mlplan serve
    --controller``): one row per deployment, taken by the ``holder`` (an id, the host and the
    process) that renewed it last, until ``expires_at``. ``acquired_at`` is when the holder took
    it (not renewed it): a controller judges a step only on what it saw after that."""

    __tablename__ = "rollout_leases"
    __table_args__ = (UniqueConstraint("deployment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    renewed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class MonitorWindowRecord(Base):
    """One family of a monitoring window (``mlplan monitor``): a deployment's (or, with
    ``deployment`` NULL, a model's whole log's) records answered by one package ``version``
    (its hash's first 12 hex) in ``[window_start, window_end)``, within one ``slice`` value
    (``all``: every record), their metrics as JSON, how many samples they rest on, and the
    ``monitor`` run that computed them. A window computed again replaces its rows (same
    deployment, model, version and window)."""

    __tablename__ = "monitor_windows"
    # the newest windows of one family of one deployment, from the index (a page's span)
    __table_args__ = (
        Index("ix_monitor_windows_span", "project_id", "deployment", "family", "window_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    deployment: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    window_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    slice: Mapped[str] = mapped_column(String(300))
    family: Mapped[str] = mapped_column(String(20))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    samples: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))  # the monitor run
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertRecord(Base):
    """An alert a plan's monitoring rule raised (``mlplan monitor check``): the ``rule``
    (``family.name``) on one ``deployment`` and ``slice`` value, the ``value`` that crossed the
    ``threshold`` (``op``) in the window ending ``window_end``, its ``severity`` and ``state``
    (``open``, ``acknowledged``, ``resolved``), when it first and last fired, who acknowledged it
    and why, and when a check found it no longer firing. One alert stays open (or acknowledged)
    per rule, deployment and slice until resolved; a firing after that opens a new one."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    rule: Mapped[str] = mapped_column(String(200))
    deployment: Mapped[str] = mapped_column(String(100))
    slice: Mapped[str] = mapped_column(String(300))
    metric: Mapped[str] = mapped_column(String(300))
    op: Mapped[str] = mapped_column(String(2))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), index=True)
    window_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    first_fired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_fired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acked_by: Mapped[str | None] = mapped_column(String(200))
    acked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ack_note: Mapped[str | None] = mapped_column(Text)


class WebhookDeliveryRecord(Base):
    """One post of alerts to the plan's webhook: the URL (never the secret), the alert ids it
    carried, its outcome (``delivered`` or ``failed``), how many attempts it took, the last HTTP
    status and error, and when."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    alert_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer)
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
