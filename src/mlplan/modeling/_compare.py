"""Comparing models with the bars they must clear (``_bars.py``), on the same test split, and
the gaps between the best model and each bar; stored as a report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlplan.core import LOWER_IS_BETTER, json_safe
from mlplan.data import get_split
from mlplan.errors import ParameterError, UsageError
from mlplan.modeling._bars import (
    Resampling,
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
    """Rows of (name, kind, metrics with intervals, the decision threshold of their labels),
    the primary metric, the gaps, and how the intervals were drawn (``bootstrap`` resamples
    from ``seed`` at ``confidence``: as ``evaluate`` draws them)."""

    split: str
    primary: str
    rows: list[dict[str, Any]]
    gaps: dict[str, Any] = field(default_factory=dict)
    bootstrap: int | None = None
    seed: int | None = None
    confidence: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """From its JSON form (the stored report)."""
        return cls(
            data["split"],
            data["primary"],
            list(data["rows"]),
            dict(data.get("gaps", {})),
            data.get("bootstrap"),
            data.get("seed"),
            data.get("confidence"),
        )

    @property
    def best_model(self) -> str | None:
        """The model that did best on the primary metric, if a model was compared."""
        best = self.gaps.get("best_model")
        return None if best is None else str(best)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "split": self.split,
            "primary": self.primary,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "confidence": self.confidence,
            "rows": self.rows,
            "gaps": self.gaps,
        }


def compare_models(
    ws: Workspace, *, split: str | None = None, n_boot: int | None = None, seed: int = 0
) -> Comparison:
    """Every model of the split and every bar, on its test rows; stored as a report.

    Each measured row's metrics and intervals come from the metric engine with the draws
    ``evaluate`` makes for its overall group: the same model on the same test rows has the
    same value and interval in both (at the same ``n_boot`` and ``seed``). A binary model's
    labels follow the decision threshold its package records, as in ``evaluate``.

    Parameters
    ----------
    n_boot
        Bootstrap resamples (default: ``evaluation.bootstrap``).
    seed
        Seed of the bootstrap (``evaluate``'s default is 0 too).

    Raises
    ------
    UsageError
        No model trained on the split yet.
    ParameterError
        A negative ``n_boot``.
    """
    plan = ws.plan
    boot = plan.evaluation.bootstrap if n_boot is None else n_boot
    if boot < 0:
        raise ParameterError("n_boot", f"{{param}} must be 0 or more; got {boot}")
    resampling = Resampling(boot, seed, plan.evaluation.confidence)
    split_info = get_split(ws, split)
    models = [m for m in list_models(ws) if m.split == split_info.ref]
    if not models:
        raise UsageError(
            f"no model trained on {split_info.ref} yet: mlplan train --baseline "
            f"--split {split_info.ref}"
        )
    test = compared_rows(ws, split_info, models)
    rows = [
        trivial_row(ws, test, resampling),
        *reported_rows(ws),
        *older_system_rows(ws, split_info, test, resampling),
        *model_rows(ws, models, test, resampling),
    ]
    primary = _primary_metric(ws, rows, test.kind)
    comparison = Comparison(
        split_info.ref, primary, rows, _gaps(rows, primary), boot, seed, resampling.level
    )

    parameters = {"split": split_info.ref, "bootstrap": boot, "seed": seed}
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
    worst = float("inf") if pick is min else float("-inf")

    def score(row: dict[str, Any]) -> float:
        # A metric that cannot be measured on these rows (None) ranks last.
        value = row["metrics"].get(primary, {}).get("value")
        return worst if value is None else float(value)

    best = pick(models, key=score)
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
        if (
            metric is not None
            and row["metrics"][metric].get("value") is not None
            and best["metrics"][metric].get("value") is not None
        ):
            gaps[f"to_{row['kind']}"] = (
                best["metrics"][metric]["value"] - row["metrics"][metric]["value"]
            )
            gaps[f"to_{row['kind']}_metric"] = metric
    return gaps
