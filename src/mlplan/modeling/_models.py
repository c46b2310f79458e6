"""The model registry, read side: every registered model and one by name.

A model (``logistic-1``) has package versions: training registers version 1, and each new
decision threshold another (``logistic-1@2``), never an edit of a package. A bare name means
the newest version; ``NAME@N`` names one exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlplan.errors import ModelNotFoundError
from mlplan.store import (
    DatasetRecord,
    DatasetVersionRecord,
    ModelRecord,
    SplitRecord,
    package_sha256,
)
from mlplan.workspace import Workspace

__all__ = ["ModelInfo", "get_model", "list_models", "parse_model_ref"]


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: one package version of it (``version``; ``parent``: the version
    it was derived from, e.g. ``logistic-1@1``, None for a trained one)."""

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
    version: int = 1
    parent: str | None = None

    @property
    def ref(self) -> str:
        """The exact package version, ``name@version`` (e.g. ``logistic-1@2``)."""
        return f"{self.name}@{self.version}"

    @property
    def package_sha256(self) -> str:
        """The package's hash, of all its files: another threshold, another hash."""
        return package_sha256(self.package)

    @classmethod
    def from_record(cls, record: ModelRecord, split: str, parent: str | None = None) -> ModelInfo:
        """From the store's row, the reference of its split and the version it came from."""
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
            record.version,
            parent,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__) | {"ref": self.ref, "package_sha256": self.package_sha256}


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """A model's name and package version: ``logistic-1@2`` -> ``("logistic-1", 2)``; a bare
    name has no version (the newest is meant).

    Raises
    ------
    ModelNotFoundError
        A version that is not a whole number from 1.

    Examples
    --------
    >>> parse_model_ref("logistic-1@2"), parse_model_ref("gbt-1")
    (('logistic-1', 2), ('gbt-1', None))
    """
    name, at, version = ref.partition("@")
    if not at:
        return name, None
    if not version.isascii() or not version.isdigit() or int(version) < 1:
        raise ModelNotFoundError(
            f"model {ref!r}: the version after @ is a number from 1 (e.g. {name}@1)"
        )
    return name, int(version)


def list_models(
    ws: Workspace, *, versions: bool = False, name: str | None = None
) -> list[ModelInfo]:
    """Every registered model, oldest first: the newest package version of each, or every
    version with ``versions`` (each model's versions in order); with ``name``, only that
    model's (none when no model has that name).

    A version is derived from a version of the same model, so the ``parent`` of each is
    known from that model's rows alone."""
    query = (
        ws.select(ModelRecord, DatasetRecord.name, DatasetVersionRecord.version, SplitRecord.number)
        .join(SplitRecord, ModelRecord.split_id == SplitRecord.id)
        .join(DatasetVersionRecord, SplitRecord.dataset_version_id == DatasetVersionRecord.id)
        .join(DatasetRecord, DatasetVersionRecord.dataset_id == DatasetRecord.id)
        .order_by(ModelRecord.created_at, ModelRecord.id)
    )
    if name is not None:
        query = query.where(ModelRecord.name == name)
    with ws.store.transaction() as session:
        rows = session.execute(query).all()
        refs = {m.id: f"{m.name}@{m.version}" for m, *_ in rows}
        every = [
            ModelInfo.from_record(
                m,
                f"{dataset}@{version}/s{number}",
                None if m.parent_id is None else refs.get(m.parent_id),
            )
            for m, dataset, version, number in rows
        ]
    by_name: dict[str, list[ModelInfo]] = {}
    for info in every:
        by_name.setdefault(info.name, []).append(info)
    if versions:
        return [v for found in by_name.values() for v in sorted(found, key=lambda m: m.version)]
    return [max(found, key=lambda m: m.version) for found in by_name.values()]


def get_model(ws: Workspace, name: str) -> ModelInfo:
    """A registered model by name (e.g. ``gbt-1``: its newest package version) or one
    package version exactly (``gbt-1@2``).

    Raises
    ------
    ModelNotFoundError
        Listing the registered models, or the versions of the one named.
    """
    wanted, version = parse_model_ref(name)
    found = list_models(ws, versions=True, name=wanted)  # that model's rows only
    if found and version is None:
        return max(found, key=lambda m: m.version)
    for model in found:
        if model.version == version:
            return model
    if found:
        raise ModelNotFoundError(
            f"model {name!r} not found; {wanted} has versions: {', '.join(m.ref for m in found)}"
        )
    names = dict.fromkeys(m.name for m in list_models(ws))
    raise ModelNotFoundError(
        f"model {name!r} not found; known: "
        f"{', '.join(names) or 'none'}. Train one with: "
        "mlplan train --baseline"
    )
