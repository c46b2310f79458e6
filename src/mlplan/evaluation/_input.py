"""What one evaluation reads: the subject (a registered model or predictions made elsewhere),
the split as loaded, the predictions on the rows evaluated, and the options of the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.data import DatasetVersionInfo, Engine, SplitInfo, load_split
from mlplan.modeling import ModelInfo, Predictions, target_column, target_kind
from mlplan.workspace import PRODUCTION, Workspace

__all__ = ["PARTS", "EvaluationInput", "LoadedSplit", "Part", "Prediction", "Subject"]

Part = Literal["train", "valid", "test"]
PARTS: dict[str, int] = {"train": 0, "valid": 1, "test": 2}
"""Each part of a split and its code in the split's row codes."""


@dataclass(frozen=True)
class Subject:
    """What is evaluated: a registered model, or predictions made elsewhere (a file)."""

    name: str
    family: str
    split: str
    """The split it learned from (a model) or is matched to (a file)."""
    features: dict[str, Any]
    model: ModelInfo | None = None
    source: dict[str, str] | None = None
    """Predictions made elsewhere: the file's ``path`` (relative to the project) and
    ``sha256``."""

    @classmethod
    def of_model(cls, model: ModelInfo) -> Subject:
        """A registered model."""
        return cls(model.name, model.family, model.split, model.features, model)

    @classmethod
    def of_file(cls, name: str, split: str, *, path: str, sha256: str) -> Subject:
        """Predictions made elsewhere, read from the file at ``path``."""
        return cls(name, "external", split, {}, None, {"path": path, "sha256": sha256})


@dataclass(frozen=True)
class LoadedSplit:
    """A split as loaded: its record, the dataset version, the whole table, each row's part
    code (0 train, 1 valid, 2 test), the target column and what kind of target it is."""

    info: SplitInfo
    version: DatasetVersionInfo
    table: pa.Table
    codes: np.ndarray
    target: pa.ChunkedArray
    kind: Literal["regression", "classification"]

    @classmethod
    def load(cls, ws: Workspace, split: SplitInfo) -> LoadedSplit:
        """Read ``split``'s rows and find its target."""
        loaded = load_split(ws, split)
        version, table, codes = loaded.info, loaded.table, loaded.codes
        target = table.column(target_column(ws, version))
        kind: Literal["regression", "classification"] = (
            "classification" if version.format == "images" else target_kind(ws.plan.task, target)
        )
        return cls(split, version, table, codes, target, kind)

    @property
    def ref(self) -> str:
        """The split's reference, ``name@version/sN``."""
        return self.info.ref

    @property
    def known(self) -> np.ndarray:
        """Which rows have a known target."""
        return ~np.asarray(pc.is_null(self.target).to_numpy(zero_copy_only=False))


@dataclass(frozen=True)
class Prediction:
    """The subject's predictions on the rows evaluated: the metric engine's arrays, the
    table rows they belong to, each row's item id, and the binary decision threshold (with
    how it was chosen) when there is one."""

    data: Predictions
    rows: np.ndarray
    ids: list[str]
    threshold: dict[str, Any] | None = None


@dataclass(frozen=True)
class EvaluationInput:
    """Everything one evaluation analyses: what is evaluated, on which split and rows, and
    the options of the run (``n_boot`` resamples from ``seed``; ``out``: the folder for the
    report, default ``reports/<name>``)."""

    subject: Subject
    split: LoadedSplit
    prediction: Prediction
    part: Part
    n_boot: int
    seed: int
    out: str | Path | None = None
    deployment: str = PRODUCTION
    """The deployment whose model the candidate is held against (regressions)."""
    engine: Engine = "local"
    """Where the rows were scored (the report is the same either way; the run says)."""
