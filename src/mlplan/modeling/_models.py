"""The model registry, read side: every registered model and one by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlplan.errors import ModelNotFoundError
from mlplan.store import DatasetRecord, DatasetVersionRecord, ModelRecord, SplitRecord
from mlplan.workspace import Workspace

__all__ = ["ModelInfo", "get_model", "list_models"]


@dataclass(frozen=True)
class ModelInfo:
    """A registered model."""

    name: str
    family: str
    task: str
    baseline: bool
    split: str
    parameters: dict[str, Any]
    features: dict[str, Any]
    metrics: dict[str, Any]
    package: dict[str, Any]
    parity: dict[str, Any]
    seconds: float
    run_id: str
    compute: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: ModelRecord, split: str) -> ModelInfo:
        """From the store's row and the reference of its split."""
        return cls(
            record.name,
            record.family,
            record.task,
            record.baseline,
            split,
            record.parameters,
            record.features,
            record.metrics,
            record.package,
            record.parity,
            record.seconds,
            record.run_id,
            record.compute,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


def list_models(ws: Workspace) -> list[ModelInfo]:
    """Every registered model, oldest first."""
    with ws.store.transaction() as session:
        rows = session.execute(
            ws.select(
                ModelRecord, DatasetRecord.name, DatasetVersionRecord.version, SplitRecord.number
            )
            .join(SplitRecord, ModelRecord.split_id == SplitRecord.id)
            .join(DatasetVersionRecord, SplitRecord.dataset_version_id == DatasetVersionRecord.id)
            .join(DatasetRecord, DatasetVersionRecord.dataset_id == DatasetRecord.id)
            .order_by(ModelRecord.created_at, ModelRecord.id)
        ).all()
        return [
            ModelInfo.from_record(m, f"{name}@{version}/s{number}")
            for m, name, version, number in rows
        ]


def get_model(ws: Workspace, name: str) -> ModelInfo:
    """A registered model by name (e.g. ``gbt-1``).

    Raises
    ------
    ModelNotFoundError
        Listing the registered models.
    """
    models = list_models(ws)
    for model in models:
        if model.name == name:
            return model
    raise ModelNotFoundError(
        f"model {name!r} not found; known: "
        f"{', '.join(m.name for m in models) or 'none'}. Train one with: "
        "mlplan train --baseline"
    )
