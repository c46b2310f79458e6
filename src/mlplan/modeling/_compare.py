"""Comparing models with the bars they must clear (``_bars.py``), on the same test split, and
the gaps between the best model and each bar; stored as a report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlplan.core import LOWER_IS_BETTER, json_safe
from mlplan.data import get_split
from mlplan.errors import UsageError
from mlplan.modeling._bars import (
    compared_rows,
    model_rows,
    older_system_rows,
    reported_rows,
    trivial_row,
)
from mlplan.modeling._models import list_models
from mlplan.workspace import Workspace

__all__ = ["Comparison", "compare_models", "latest_comparison"]


@dataclass(frozen=True)
class Comparison:
    """Rows of (name, kind, metrics with intervals), the primary metric, and the gaps."""

    split: str
    primary: str
    rows: list[dict[str, Any]]
    gaps: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """From its JSON form (the stored report)."""
        return cls(data["split"], data["primary"], list(data["rows"]), dict(data.get("gaps", {})))

    @property
    def best_model(self) -> str | None:
        """The model that did best on the primary metric, if a model was compared."""
        best = self.gaps.get("best_model")
        return None if best is None else str(best)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"split": self.split, "primary": self.primary, "rows": self.rows, "gaps": self.gaps}


def compare_models(
    ws: Workspace, *, split: str | None = None, n_boot: int = 200, seed: int = 0
) -> Comparison:
    """Every model of the split and every bar, on its test rows; stored as a report.

    Raises
    ------
    UsageError
        No model trained on the split yet.
    """
    split_info = get_split(ws, split)
    models = [m for m in list_models(ws) if m.split == split_info.ref]
    if not models:
        raise UsageError(
            f"no model trained on {split_info.ref} yet: mlplan train --baseline "
            f"--split {split_info.ref}"
        )
    test = compared_rows(ws, split_info, models)
    rows = [
        trivial_row(test, n_boot=n_boot, seed=seed),
        *reported_rows(ws),
        *older_system_rows(ws, split_info, test, n_boot=n_boot, seed=seed),
        *model_rows(ws, models, test, n_boot=n_boot, seed=seed),
    ]
    primary = _primary_metric(ws, rows, test.kind)
    comparison = Comparison(split_info.ref, primary, rows, _gaps(rows, primary))

    parameters = {"split": split_info.ref, "bootstrap": n_boot, "seed": seed}
    with ws.record("models compare", parameters) as run:
        run.input("split", split_info.ref, sha256=split_info.artifact_sha256)
        for model in models:
            run.input("model", model.ref, sha256=model.package_sha256)
        run.report("comparison", json_safe(comparison.to_dict()))
    return comparison


def latest_comparison(ws: Workspace) -> Comparison | None:
    """The newest stored comparison, if any."""
    found = ws.latest_report("comparison")
    return None if found is None else Comparison.from_dict(found.report)


def _primary_metric(ws: Workspace, rows: list[dict[str, Any]], kind: str) -> str:
    """The plan's primary metric where the models have it, else MAE or accuracy."""
    primary = ws.plan.metrics.primary_metric
    if primary and any(primary.name in r["metrics"] for r in rows if r["kind"] == "model"):
        return primary.name
    return "mae" if kind == "regression" else "accuracy"


def _gaps(rows: list[dict[str, Any]], primary: str) -> dict[str, Any]:
    """The best model, and how far it is from each measured bar."""
    models = [r for r in rows if r["kind"] == "model"]
    pick = min if primary in LOWER_IS_BETTER else max
    best = pick(models, key=lambda r: r["metrics"][primary]["value"])
    gaps: dict[str, Any] = {"best_model": best["name"], "metric": primary}
    for row in rows:
        if row["kind"] not in {"hlp", "trivial", "older_system"}:
            continue
        # HLP from hard labels has no ranking metric: then the gap is taken in accuracy.
        metric = (
            primary
            if primary in row["metrics"]
            else (
                "accuracy"
                if "accuracy" in row["metrics"] and "accuracy" in best["metrics"]
                else None
            )
        )
        if metric is not None and row["metrics"][metric].get("value") is not None:
            gaps[f"to_{row['kind']}"] = (
                best["metrics"][metric]["value"] - row["metrics"][metric]["value"]
            )
            gaps[f"to_{row['kind']}_metric"] = metric
    return gaps
