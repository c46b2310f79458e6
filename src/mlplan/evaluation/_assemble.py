"""The analysis of one evaluation, assembled into its report: metrics overall and per slice,
where to focus, error types and rare classes, regressions, discovered slices, risks and
gates."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mlplan.data import all_slice_masks, effective_metadata
from mlplan.errors import DataError
from mlplan.evaluation._analysis import confusions, curves, focus, per_class, threshold_table
from mlplan.evaluation._discovery import DiscoveryResult, candidate_conditions, discover_slices
from mlplan.evaluation._gates import judge_gates, judge_risks, judge_threshold, top_k_metric
from mlplan.evaluation._input import EvaluationInput
from mlplan.evaluation._regressions import production_reference, regression_checks
from mlplan.labels import get_hlp
from mlplan.modeling import Predictions, SliceReport, select_features, slice_metrics, target_values
from mlplan.plan import Plan
from mlplan.workspace import Workspace

__all__ = ["Analysis", "analyse"]

Masks = Mapping[str, Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class Analysis:
    """An evaluation's findings: the report (JSON-ready, before it is stored) and the slice
    reports it was made from (``overall``: every row; ``slices``: one per plan slice)."""

    report: dict[str, Any]
    overall: SliceReport
    slices: dict[str, SliceReport]


def analyse(ws: Workspace, inp: EvaluationInput) -> Analysis:
    """Every analysis of ``inp``'s predictions, in the order the report lists them.

    Raises
    ------
    DataError
        A slice without rows, a discovery column the data lacks.
    UsageError
        A gate or risk whose metric does not apply to the task.
    """
    plan = ws.plan
    data = inp.prediction.data
    evaluated = inp.split.table.take(pa.array(inp.prediction.rows))
    masks = _slice_masks(ws, inp, evaluated)
    overall, reports = _slice_reports(plan, inp, masks)
    metrics = _overall_metrics(plan, data, overall)
    focus_metric = _focus_metric(plan, data, overall)
    report: dict[str, Any] = {
        "model": inp.subject.name,
        "family": inp.subject.family,
        "task": plan.task,
        "kind": data.kind,
        "split": inp.split.ref,
        "part": inp.part,
        "rows": data.n,
        "bootstrap": inp.n_boot,
        "confidence": plan.evaluation.confidence,
        "seed": inp.seed,
        "metrics": list(overall.metrics),
        "focus_metric": focus_metric,
        "overall": metrics,
        "slices": [reports[s.name].to_dict() | {"min_support": s.min_support} for s in plan.slices],
        "focus": _focus(ws, reports, data, focus_metric),
    }
    if data.kind != "regression":
        report |= _error_types(plan, inp, overall)
    report["regressions"] = regression_checks(
        ws, inp, masks, focus_metric=focus_metric, production=production_reference(ws, inp)
    )
    found, columns = _discover(ws, inp, evaluated)
    report["discovery"] = found.to_dict() | {
        "columns": columns,
        "error": "misclassification" if data.kind != "regression" else "absolute error",
    }
    report["risks"] = judge_risks(plan, data.kind, metrics, reports, found.slices)
    if data.kind == "binary" and report.get("threshold"):
        trivial = judge_threshold(report["threshold"], data.classes, data.classes[data.positive])
        if trivial is not None:
            report["risks"].append(trivial)
            report["threshold"]["warning"] = trivial["evidence"]
    report["gates"] = judge_gates(plan, data.kind, metrics, reports, report["regressions"])
    report["passed"] = not any(g["state"] == "fail" for g in report["gates"])
    if inp.subject.source is not None:
        report["source"] = inp.subject.source
    return Analysis(report, overall, reports)


def _slice_masks(ws: Workspace, inp: EvaluationInput, evaluated: pa.Table) -> Masks:
    """The plan's slices as row masks over the rows evaluated; each must select some."""
    plan = ws.plan
    masks = all_slice_masks(evaluated, plan.slices)
    for s in plan.slices:
        if not any(m.any() for m in masks[s.name].values()):
            raise DataError(
                f"slice {s.name!r} selects no rows of the {inp.part} split of {inp.split.ref}; "
                f"check its definition in {ws.plan_path.name}"
            )
    return masks


def _slice_reports(
    plan: Plan, inp: EvaluationInput, masks: Masks
) -> tuple[SliceReport, dict[str, SliceReport]]:
    """Metrics over every row, and per value of each slice, with bootstrap intervals."""
    data = inp.prediction.data
    level = plan.evaluation.confidence
    boot, seed = inp.n_boot, inp.seed
    overall = slice_metrics(data, name="overall", n_boot=boot, seed=seed, level=level)
    reports = {
        s.name: slice_metrics(
            data,
            groups=masks[s.name],
            name=s.name,
            n_boot=boot,
            seed=seed,
            level=level,
            min_support=s.min_support,
            overall=overall,
        )
        for s in plan.slices
    }
    return overall, reports


def _overall_metrics(
    plan: Plan, data: Predictions, overall: SliceReport
) -> dict[str, dict[str, Any]]:
    """The overall metrics as JSON, with the plan's top-k ranking metrics added."""
    metrics = {k: v.to_dict() for k, v in overall.overall.items()}
    for target in plan.metrics.ml:
        value = _top_k(data, target.name)
        if value is not None:
            metrics[target.name] = {"value": value, "low": None, "high": None}
    return metrics


def _top_k(data: Predictions, name: str) -> float | None:
    """``precision_at_K`` / ``recall_at_K`` of a binary model's K highest scores."""
    parsed = top_k_metric(name)
    if parsed is None or data.proba is None or data.kind != "binary":
        return None
    base, k = parsed
    score = data.proba[:, data.positive]
    positive = data.y == data.positive
    top = np.argsort(-score, kind="stable")[: min(k, data.n)]
    hits = float(positive[top].sum())
    if base == "precision":
        return hits / len(top) if len(top) else None
    total = float(positive.sum())
    return hits / total if total else None


def _focus_metric(plan: Plan, data: Predictions, overall: SliceReport) -> str:
    """The plan's primary metric when it is computed, else MAE or accuracy."""
    primary = plan.metrics.primary_metric
    if primary is not None and primary.name in overall.metrics:
        return primary.name
    return "mae" if data.kind == "regression" else "accuracy"


def _focus(
    ws: Workspace, reports: dict[str, SliceReport], data: Predictions, metric: str
) -> list[dict[str, Any]]:
    """Where to focus: slice values ranked by their gap (to HLP when measured) x share."""
    hlp_slices, hlp_overall = _hlp_references(ws, metric)
    draws = {(name, g): d for name, r in reports.items() for g, d in r.draws.items()}
    return focus(
        list(reports.values()),
        draws,
        metric=metric,
        total=data.n,
        min_support={s.name: s.min_support for s in ws.plan.slices},
        alpha=ws.plan.evaluation.alpha,
        hlp=hlp_slices,
        hlp_overall=hlp_overall,
    )


def _hlp_references(
    ws: Workspace, metric: str
) -> tuple[dict[tuple[str, str], float], float | None]:
    """HLP of ``metric`` per slice value and overall: measured, else the plan's value."""
    stored = get_hlp(ws)
    per_slice: dict[tuple[str, str], float] = {}
    overall = None
    if stored is not None:
        for row in stored.hlp.per_slice:
            value = row.get("metrics", {}).get(metric, {}).get("value")
            if value is not None:
                per_slice[(row["slice"], row["value"])] = float(value)
        if metric in stored.hlp.metrics and np.isfinite(stored.hlp.metrics[metric].value):
            overall = float(stored.hlp.metrics[metric].value)
    hlp = ws.plan.baselines.hlp
    if (
        overall is None
        and hlp is not None
        and hlp.source == "value"
        and metric == ws.plan.metrics.primary
    ):
        overall = hlp.value
    return per_slice, overall


def _error_types(plan: Plan, inp: EvaluationInput, overall: SliceReport) -> dict[str, Any]:
    """Classification: the classes, confusions, per-class metrics (rare classes by their
    share of the training rows), curves and the decision threshold's table."""
    data = inp.prediction.data
    spec = plan.evaluation
    split = inp.split
    y_all = target_values(split.target, split.kind)
    labels, counts = np.unique(
        y_all[np.flatnonzero((split.codes == 0) & split.known)].astype(str), return_counts=True
    )
    seen = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    total = sum(seen.values())
    train_share = {c: seen.get(c, 0) / total for c in data.classes} if total else None
    out: dict[str, Any] = {
        "classes": list(data.classes),
        "positive": data.classes[data.positive] if data.kind == "binary" else None,
        "confusion": confusions(data),
        "per_class": per_class(
            data,
            rare_share=spec.rare_class_share,
            min_support=spec.discovery.min_support,
            level=spec.confidence,
            overall=overall,
            train_share=train_share,
        ),
        "rare_class_share": spec.rare_class_share,
        "curves": curves(data),
    }
    threshold = inp.prediction.threshold
    if threshold is not None and data.proba is not None:
        score = data.proba[:, data.positive]
        table = threshold_table(score, data.y == data.positive, threshold["value"])
        out["threshold"] = threshold | {"table": table}
    return out


def _discover(
    ws: Workspace, inp: EvaluationInput, evaluated: pa.Table
) -> tuple[DiscoveryResult, list[str]]:
    """Slices where the error (mistakes, or absolute errors) concentrates, searched over the
    discovery columns; and those columns."""
    spec = ws.plan.evaluation
    discovery = spec.discovery
    data = inp.prediction.data
    if data.kind != "regression":
        error = (data.p != data.y).astype(np.float64)
    else:
        assert data.values is not None and data.predicted is not None
        error = np.abs(data.predicted - data.values)
    columns = _discovery_columns(ws, inp, evaluated)
    conditions = candidate_conditions(evaluated, columns, min_support=discovery.min_support)
    found = discover_slices(
        conditions,
        error,
        max_conditions=discovery.max_conditions,
        min_support=discovery.min_support,
        min_effect=discovery.min_effect,
        alpha=spec.alpha,
        max_seconds=discovery.max_seconds,
    )
    return found, columns


def _discovery_columns(ws: Workspace, inp: EvaluationInput, table: pa.Table) -> list[str]:
    """The plan's ``evaluation.discovery.features``, else the model's inputs, the slices'
    columns and the sensitive attributes (never the target, ids, times or personal data)."""
    plan = ws.plan
    info = inp.split.version
    chosen = plan.evaluation.discovery.features
    if chosen is not None:
        missing = [c for c in chosen if c not in table.column_names]
        if missing:
            close = difflib.get_close_matches(missing[0], table.column_names, n=2, cutoff=0.5)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise DataError(
                f"evaluation.discovery.features names {missing[0]!r}, which is not a column "
                f"of {info.ref}{hint}"
            )
        return list(chosen)
    meta = effective_metadata(ws, info)
    excluded = {
        plan.target,
        meta.get("id_column"),
        meta.get("time_column"),
        *(meta.get("pii_columns") or []),
        "path",
        "sha256",
        "label",
    }
    spec = inp.subject.features
    if not spec and info.format != "images":
        spec = select_features(ws, info).to_dict()
    wanted = [*spec.get("numeric", []), *spec.get("categorical", [])]
    for s in plan.slices:
        wanted.extend(s.referenced_columns)
    wanted.extend(meta.get("sensitive_attributes") or [])
    return [
        c
        for c in dict.fromkeys(wanted)
        if c in table.column_names and c not in excluded and c is not None
    ]
