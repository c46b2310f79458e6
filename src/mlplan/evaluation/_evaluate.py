"""``mlplan evaluate``: a model's package run on a split's rows, every analysis of the error,
the gates judged, and the report, model card and JSON written and stored as evidence."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.core import json_safe
from mlplan.data import all_slice_masks, effective_metadata, get_split, load_split
from mlplan.errors import CheckFailedError, DataError, DeploymentNotFoundError, UsageError
from mlplan.evaluation._analysis import (
    choose_threshold,
    confusions,
    curves,
    focus,
    per_class,
    regressions,
    threshold_table,
)
from mlplan.evaluation._card import model_card
from mlplan.evaluation._discovery import candidate_conditions, discover_slices
from mlplan.evaluation._gates import judge_gates, judge_risks, top_k_metric
from mlplan.evaluation._metrics import (
    Predictions,
    SliceReport,
    slice_metrics,
)
from mlplan.evaluation._report import render_report
from mlplan.labels import get_hlp
from mlplan.modeling import (
    example_rows,
    feeds_for,
    get_model,
    inputs_for,
    list_models,
    older_system_predictions,
    read_predictions,
    run_graph,
    select_features,
    target_column,
    target_kind,
    target_values,
)
from mlplan.plan import NAME_PATTERN
from mlplan.store import ArtifactStore, ModelRecord, sha256_file
from mlplan.workspace import (
    DEPLOY_GATE,
    PRODUCTION,
    ReportInfo,
    Workspace,
    get_deployment,
    list_approvals,
)

__all__ = [
    "Evaluation",
    "EvaluationInfo",
    "evaluate",
    "evaluate_predictions",
    "latest_evaluation",
    "list_evaluations",
    "raise_for_gates",
]

Part = Literal["train", "valid", "test"]
_PARTS: dict[str, int] = {"train": 0, "valid": 1, "test": 2}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the report (as stored), where its files were written, and whether
    every gate passed."""

    model: str
    report: dict[str, Any]
    files: dict[str, Path]

    @property
    def passed(self) -> bool:
        """No gate failed."""
        return bool(self.report["passed"])

    @property
    def failed_gates(self) -> list[dict[str, Any]]:
        """The gates that failed."""
        return [g for g in self.report["gates"] if g["state"] == "fail"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return self.report | {"files": {k: str(v) for k, v in self.files.items()}}


@dataclass(frozen=True)
class _Prediction:
    data: Predictions
    rows: np.ndarray
    ids: list[str]
    threshold: dict[str, Any] | None


def _read_json(ws: Workspace, sha256: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ws.store.artifacts.path(sha256).read_text())
    return loaded


def _row_ids(ws: Workspace, info: Any, table: pa.Table, rows: np.ndarray) -> list[str]:
    id_column = effective_metadata(ws, info).get("id_column")
    if id_column and id_column in table.column_names:
        values = pc.cast(table.column(id_column), pa.string()).to_pylist()
        return [str(values[i]) for i in rows]
    return [str(i) for i in rows]


def _threshold(
    plan_choice: float | str,
    given: float | str | None,
    valid: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    choice = plan_choice if given is None else given
    if isinstance(choice, str):
        try:
            choice = float(choice)
        except ValueError:
            if choice not in {"f1", "youden"}:
                raise UsageError(
                    f"--threshold must be a number in (0, 1), f1 or youden; got {choice!r}"
                ) from None
    if isinstance(choice, float):
        if not 0 < choice < 1:
            raise UsageError(f"--threshold must be in (0, 1); got {choice}")
        return {"value": choice, "criterion": "fixed", "chosen_on": None}
    if valid is None:
        return {
            "value": 0.5,
            "criterion": "default",
            "chosen_on": None,
            "note": f"no validation rows to choose a threshold by {choice}; 0.5 is used",
        }
    value, score = choose_threshold(valid[0], valid[1], choice)
    return {"value": value, "criterion": choice, "chosen_on": "valid", "criterion_value": score}


def _predict(
    ws: Workspace,
    model: Any,
    info: Any,
    table: pa.Table,
    codes: np.ndarray,
    kind: str,
    part: Part,
    threshold: float | str | None,
) -> _Prediction:
    plan = ws.plan
    column = table.column(target_column(ws, info))
    known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
    examples = example_rows(model.features, table, codes, known)
    rows = examples[part]
    if not rows.size:
        raise DataError(
            f"the {part} split of {model.split} has no rows with a known target to evaluate "
            f"{model.name} on; choose another with --split"
        )
    graph = ws.store.artifacts.path(model.package["model.onnx"]).read_bytes()
    spec = model.features

    def run(which: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return run_graph(graph, feeds_for(spec, inputs_for(ws, info, table, spec, which)), kind)

    predicted, proba = run(rows)
    y_all = target_values(column, kind)
    y = y_all[rows]
    ids = _row_ids(ws, info, table, rows)
    if kind == "regression":
        return _Prediction(
            Predictions.from_arrays(y, predicted, kind="regression"), rows, ids, None
        )
    metadata = _read_json(ws, model.package["metadata.json"])
    classes = [str(c) for c in metadata["classes"]]
    positive = _positive(plan.positive_class, classes, model.name)
    chosen = None
    if threshold is not None and (len(classes) != 2 or proba is None):
        raise UsageError(
            f"--threshold applies to a binary model with probabilities; {model.name} has "
            f"{len(classes)} classes"
        )
    if len(classes) == 2 and proba is not None:
        pos = classes.index(positive) if positive is not None else 1
        valid_rows = examples["valid"]
        valid = None
        if valid_rows.size:
            _, valid_proba = run(valid_rows)
            assert valid_proba is not None
            valid = (valid_proba[:, pos], y_all[valid_rows] == classes[pos])
        chosen = _threshold(plan.evaluation.threshold, threshold, valid)
        if part == "valid" and chosen.get("chosen_on") == "valid":
            chosen["note"] = "chosen on the rows it is evaluated on: these figures are optimistic"
        decided = proba[:, pos] >= chosen["value"]
        predicted = np.where(decided, classes[pos], classes[1 - pos]).astype(object)
        positive = classes[pos]
    data = Predictions.from_arrays(
        y, predicted, kind="binary", proba=proba, classes=classes, positive=positive
    )
    return _Prediction(data, rows, ids, chosen)


def _positive(positive: str | None, classes: list[str], where: str) -> str | None:
    if positive is None or len(classes) != 2:
        return None
    if positive not in classes:
        raise DataError(
            f"the plan's positive_class {positive!r} is not one of the classes of {where}: "
            f"{', '.join(classes)}; fix positive_class in the plan"
        )
    return positive


def _label(value: Any) -> str:
    """A label as the target column spells it: 1.0 read from a file is the class '1'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _discovery_columns(
    ws: Workspace, info: Any, spec: dict[str, Any], table: pa.Table
) -> list[str]:
    plan = ws.plan
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


def _top_k(data: Predictions, name: str) -> float | None:
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


def _hlp_references(
    ws: Workspace, metric: str
) -> tuple[dict[tuple[str, str], float], float | None]:
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


@dataclass(frozen=True)
class _Production:
    """The model in production, as compared with a candidate: its predictions on the
    candidate's rows and a caution about them, or why they cannot be had (``deployed``: a
    model other than the candidate is in production, so the default check applies)."""

    deployed: bool
    name: str | None = None
    predictions: Predictions | None = None
    note: str | None = None
    reason: str | None = None


def _production(
    ws: Workspace, subject: _Subject, info: Any, table: pa.Table, prediction: _Prediction, kind: str
) -> _Production:
    """The model in production on the candidate's rows (labels after its own recorded
    threshold)."""
    try:
        deployed = get_deployment(ws, PRODUCTION)
    except DeploymentNotFoundError:
        return _Production(
            False, reason="no model is deployed to production yet (mlplan deploy MODEL)"
        )
    if deployed.model == subject.name:
        return _Production(False, reason=f"{subject.name} is the model in production")
    data = prediction.data
    model = get_model(ws, deployed.model)
    note = (
        None
        if model.split == subject.split
        else f"{deployed.model} learned from {model.split}, not {subject.split}: some of these "
        "rows may be ones it was trained on, which favours it"
    )
    try:
        spec = model.features
        graph = ws.store.artifacts.path(model.package["model.onnx"]).read_bytes()
        feeds = feeds_for(spec, inputs_for(ws, info, table, spec, prediction.rows))
        predicted, proba = run_graph(graph, feeds, kind)
    except Exception as exc:  # a column gone or changed, another graph: the check waits
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return _Production(
            True,
            deployed.model,
            reason=f"{deployed.model} (in production) cannot score these rows: {reason}",
        )
    if data.values is not None:
        other = Predictions.from_arrays(data.values, predicted, kind="regression")
        return _Production(True, deployed.model, other, note)
    metadata = _read_json(ws, model.package["metadata.json"])
    classes = [str(c) for c in metadata["classes"]]
    if classes != list(data.classes):
        return _Production(
            True,
            deployed.model,
            reason=f"{deployed.model} (in production) has other classes: {', '.join(classes)}",
        )
    binary = data.kind == "binary"
    if binary and proba is not None and metadata.get("threshold") is not None:
        pos = data.positive
        decided = proba[:, pos] >= float(metadata["threshold"])
        predicted = np.where(decided, classes[pos], classes[1 - pos]).astype(object)
    other = Predictions.from_arrays(
        np.asarray(data.classes, dtype=object)[data.y],
        predicted,
        kind=data.kind,
        proba=proba,
        classes=data.classes,
        positive=data.classes[data.positive] if binary else None,
    )
    return _Production(True, deployed.model, other, note)


def _regression_checks(
    ws: Workspace,
    split_ref: str,
    prediction: _Prediction,
    part: str,
    masks: Mapping[str, Mapping[str, np.ndarray]],
    focus_metric: str,
    n_boot: int,
    seed: int,
    production: Callable[[], _Production] | None = None,
) -> dict[str, Any]:
    """Per rule of the plan (and by default on the focus metric): the candidate against the
    older system and the model in production."""
    plan = ws.plan
    spec = plan.evaluation
    data = prediction.data
    rules = [(r.against, r.metric, r.tolerance) for r in plan.gates.no_regression]
    if plan.baselines.older_system is not None and not any(r[0] == "older_system" for r in rules):
        rules.append(("older_system", focus_metric, 0.0))
    deployed = production() if production is not None else _Production(False, reason="not compared")
    if deployed.deployed and not any(r[0] == "production" for r in rules):
        rules.append(("production", focus_metric, 0.0))  # never ship worse than production
    # What each kind of rule compares with: (name, predictions on the same rows, caution), or
    # why there is nothing to compare with.
    compared: dict[str, tuple[str | None, Predictions | None, str | None, str | None]] = {
        "production": (deployed.name, deployed.predictions, deployed.note, deployed.reason)
    }
    older = None
    if part == "test" and plan.baselines.older_system is not None:
        older = older_system_predictions(
            ws, split_ref, prediction.ids, data.classes if data.kind != "regression" else None
        )
    if older is None:
        missing = (
            "the plan names no older system"
            if plan.baselines.older_system is None
            else (
                "only the test split can be compared with the older system"
                if part != "test"
                else "the older system's predictions are not imported: mlplan baseline older FILE"
            )
        )
        compared["older_system"] = (None, None, None, missing)
    else:
        older_name, older_pred, older_proba = older
        older_other = (
            Predictions.from_arrays(data.values, older_pred, kind="regression")
            if data.values is not None
            else Predictions.from_arrays(
                np.asarray(data.classes, dtype=object)[data.y],
                older_pred,
                kind="binary",
                proba=older_proba,
                classes=data.classes,
                positive=data.classes[data.positive] if data.kind == "binary" else None,
            )
        )
        compared["older_system"] = (older_name, older_other, None, None)
    out: dict[str, Any] = {}
    support = {s.name: s.min_support for s in plan.slices}
    for against, metric, tolerance in rules:
        key = f"{against}:{metric}"
        name, other, note, reason = compared[against]
        if other is None:
            out[key] = {"against": against, "metric": metric, "reason": reason}
            continue
        if other.proba is None and metric in {"roc_auc", "pr_auc", "log_loss", "brier", "ece"}:
            reason = f"{name}'s predictions have no probabilities to compute {metric}"
            out[key] = {"against": against, "metric": metric, "reason": reason}
            continue
        out[key] = {
            "against": against,
            "name": name,
            "metric": metric,
            "tolerance": tolerance,
            "note": note,
            "rows": regressions(
                data,
                other,
                masks,
                metric=metric,
                tolerance=tolerance,
                min_support=support,
                n_boot=n_boot,
                seed=seed,
                level=spec.confidence,
            ),
        }
    return out


def evaluate(
    ws: Workspace,
    model: str,
    *,
    part: Part = "test",
    threshold: float | str | None = None,
    n_boot: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> Evaluation:
    """Evaluate ``model`` on the ``part`` rows of its split and store the evidence.

    Parameters
    ----------
    model
        A registered model's name.
    part
        Which rows of the model's split: test (default), valid or train.
    threshold
        Binary: a fixed decision threshold, or ``f1``/``youden`` to choose it on the
        validation rows; unset: ``evaluation.threshold`` of the plan. The threshold is
        recorded in the model package's metadata.
    n_boot
        Bootstrap resamples (default: ``evaluation.bootstrap``).
    out
        Folder for the report, model card and JSON (default: ``reports/<model>``).

    Raises
    ------
    DataError
        A slice column the data lacks (close names suggested), a slice without rows, no
        rows to evaluate on.
    UsageError
        A gate or risk whose metric does not apply to the task.
    """
    boot = _check_options(ws, part, n_boot)
    info_model = get_model(ws, model)
    split_info = get_split(ws, info_model.split)
    info, table, codes = load_split(ws, split_info)
    column = table.column(target_column(ws, info))
    kind = "classification" if info.format == "images" else target_kind(ws.plan.task, column)
    prediction = _predict(ws, info_model, info, table, codes, kind, part, threshold)
    subject = _Subject(
        info_model.name, info_model.family, info_model.split, info_model.features, info_model
    )
    return _analyse(
        ws, subject, split_info, info, table, codes, kind, prediction, part, boot, seed, out
    )


def evaluate_predictions(
    ws: Workspace,
    predictions: str | Path,
    *,
    name: str | None = None,
    split: str | None = None,
    part: Part = "test",
    n_boot: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> Evaluation:
    """Evaluate predictions made elsewhere (another team's model, the older system) on the
    ``part`` rows of a split, exactly as a registered model is evaluated.

    Parameters
    ----------
    predictions
        CSV, Parquet or JSONL with ``item_id`` (the dataset's id column, else the row
        number), ``prediction`` and, for classifiers, optionally one probability column
        per class.
    name
        What to call them in the store and the report (default: the file's stem).
    split
        The split (default: the newest).

    Raises
    ------
    DataError
        Item ids that do not match the split's rows (missing, unknown or repeated ones are
        named), or a file without item_id / prediction.
    UsageError
        A name that is not a valid name or that a registered model already has.
    """
    boot = _check_options(ws, part, n_boot)
    path = ws.resolve(predictions)
    if not path.is_file():
        raise DataError(f"{path}: no such file of predictions")
    name = name or path.stem
    if not NAME_PATTERN.match(name):
        raise UsageError(
            f"--name {name!r} must start with a letter and hold only letters, digits, "
            "'_', '.' or '-'"
        )
    if any(m.name == name for m in list_models(ws)):
        raise UsageError(f"{name!r} is a registered model; give these predictions another --name")
    given = read_predictions(path)
    split_info = get_split(ws, split)
    info, table, codes = load_split(ws, split_info)
    column = table.column(target_column(ws, info))
    kind = "classification" if info.format == "images" else target_kind(ws.plan.task, column)
    known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
    rows = np.flatnonzero((codes == _PARTS[part]) & known)
    if not rows.size:
        raise DataError(f"the {part} split of {split_info.ref} has no rows with a known target")
    ids = _row_ids(ws, info, table, rows)
    item_ids = [str(v) for v in given.column("item_id").to_pylist()]
    position: dict[str, int] = {}
    repeated = []
    for i, item in enumerate(item_ids):
        if item in position:
            repeated.append(item)
        position[item] = i
    wanted = set(ids)
    missing = [i for i in ids if i not in position]
    unknown = [i for i in item_ids if i not in wanted]
    if missing or unknown or repeated:
        problems = []
        if missing:
            problems.append(
                f"{len(missing):,} of the {len(ids):,} {part} rows have no prediction "
                f"(e.g. {', '.join(missing[:3])})"
            )
        if unknown:
            problems.append(
                f"{len(unknown):,} item_ids are not {part} rows of {split_info.ref} "
                f"(e.g. {', '.join(unknown[:3])})"
            )
        if repeated:
            problems.append(f"{len(repeated):,} item_ids repeat (e.g. {', '.join(repeated[:3])})")
        raise DataError(
            f"{path}: the item_ids do not match the split: {'; '.join(problems)}. "
            "Predict every row of the split once, keyed by the dataset's id column"
        )
    order = np.asarray([position[i] for i in ids])
    y_all = target_values(column, kind)
    values = given.column("prediction").to_pylist()
    if kind == "regression":
        try:
            predicted = np.asarray([float(values[i]) for i in order])
        except (TypeError, ValueError):
            raise DataError(f"{path}: prediction must be numbers for a regression task") from None
        data = Predictions.from_arrays(y_all[rows], predicted, kind="regression")
    else:
        classes = sorted({str(v) for v in y_all[np.flatnonzero((codes == 0) & known)]})
        if any(values[i] is None for i in order):
            raise DataError(f"{path}: some predictions are empty; every row needs a label")
        predicted = np.asarray([_label(values[i]) for i in order], dtype=object)
        known_labels = set(classes) | {str(v) for v in y_all[rows]}
        foreign = sorted(set(predicted) - known_labels)
        if foreign:
            raise DataError(
                f"{path}: predicted labels {', '.join(map(repr, foreign[:5]))} are not classes "
                f"of {split_info.ref}; classes: {', '.join(sorted(known_labels))}"
            )
        proba = None
        if classes and all(c in given.column_names for c in classes):
            proba = np.column_stack(
                [
                    pc.cast(given.column(c), pa.float64()).to_numpy(zero_copy_only=False)
                    for c in classes
                ]
            )[order]
        positive = _positive(ws.plan.positive_class, classes, split_info.ref)
        data = Predictions.from_arrays(
            y_all[rows], predicted, kind="binary", proba=proba, classes=classes, positive=positive
        )
    subject = _Subject(
        name,
        "external",
        split_info.ref,
        {},
        None,
        {"path": ws.relative(path), "sha256": sha256_file(path).sha256},
    )
    prediction = _Prediction(data, rows, ids, None)
    return _analyse(
        ws, subject, split_info, info, table, codes, kind, prediction, part, boot, seed, out
    )


def _check_options(ws: Workspace, part: str, n_boot: int | None) -> int:
    if part not in _PARTS:
        raise UsageError(f"--split must be train, valid or test; got {part!r}")
    boot = ws.plan.evaluation.bootstrap if n_boot is None else n_boot
    if boot < 0:
        raise UsageError(f"--bootstrap must be 0 or more; got {boot}")
    return boot


@dataclass(frozen=True)
class _Subject:
    """What is evaluated: a registered model, or predictions made elsewhere (a file)."""

    name: str
    family: str
    split: str
    features: dict[str, Any]
    model: Any | None = None
    source: dict[str, Any] | None = None


def _analyse(
    ws: Workspace,
    subject: _Subject,
    split_info: Any,
    info: Any,
    table: pa.Table,
    codes: np.ndarray,
    kind: str,
    prediction: _Prediction,
    part: str,
    boot: int,
    seed: int,
    out: str | Path | None,
) -> Evaluation:
    plan = ws.plan
    spec = plan.evaluation
    column = table.column(target_column(ws, info))
    data = prediction.data
    rows = prediction.rows
    level = spec.confidence
    evaluated = table.take(pa.array(rows))
    masks = all_slice_masks(evaluated, plan.slices)
    for s in plan.slices:
        if not any(m.any() for m in masks[s.name].values()):
            raise DataError(
                f"slice {s.name!r} selects no rows of the {part} split of {split_info.ref}; "
                f"check its definition in {ws.plan_path.name}"
            )
    support = {s.name: s.min_support for s in plan.slices}
    overall_report = slice_metrics(data, name="overall", n_boot=boot, seed=seed, level=level)
    reports: dict[str, SliceReport] = {
        s.name: slice_metrics(
            data,
            groups=masks[s.name],
            name=s.name,
            n_boot=boot,
            seed=seed,
            level=level,
            min_support=s.min_support,
        )
        for s in plan.slices
    }
    overall = {k: v.to_dict() for k, v in overall_report.overall.items()}
    for target in plan.metrics.ml:
        value = _top_k(data, target.name)
        if value is not None:
            overall[target.name] = {"value": value, "low": None, "high": None}

    metrics = overall_report.metrics
    primary = plan.metrics.primary_metric
    focus_metric = (
        primary.name
        if primary is not None and primary.name in metrics
        else ("mae" if data.kind == "regression" else "accuracy")
    )
    hlp_slices, hlp_overall = _hlp_references(ws, focus_metric)
    draws = {(name, g): d for name, r in reports.items() for g, d in r.draws.items()}
    focus_rows = focus(
        list(reports.values()),
        draws,
        metric=focus_metric,
        total=data.n,
        min_support=support,
        alpha=spec.alpha,
        hlp=hlp_slices,
        hlp_overall=hlp_overall,
    )

    report: dict[str, Any] = {
        "model": subject.name,
        "family": subject.family,
        "task": plan.task,
        "kind": data.kind,
        "split": split_info.ref,
        "part": part,
        "rows": data.n,
        "bootstrap": boot,
        "confidence": level,
        "seed": seed,
        "metrics": list(metrics),
        "focus_metric": focus_metric,
        "overall": overall,
        "slices": [reports[s.name].to_dict() | {"min_support": s.min_support} for s in plan.slices],
        "focus": focus_rows,
    }
    if data.kind != "regression":
        y_all = target_values(column, kind)
        known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
        labels, counts = np.unique(
            y_all[np.flatnonzero((codes == 0) & known)].astype(str), return_counts=True
        )
        seen = dict(zip(labels.tolist(), counts.tolist(), strict=True))
        total = sum(seen.values())
        train_share = {c: seen.get(c, 0) / total for c in data.classes} if total else None
        report["classes"] = list(data.classes)
        report["positive"] = data.classes[data.positive] if data.kind == "binary" else None
        report["confusion"] = confusions(data)
        report["per_class"] = per_class(
            data,
            rare_share=spec.rare_class_share,
            min_support=spec.discovery.min_support,
            n_boot=boot,
            seed=seed,
            level=level,
            train_share=train_share,
        )
        report["rare_class_share"] = spec.rare_class_share
        report["curves"] = curves(data)
        if prediction.threshold is not None and data.proba is not None:
            score = data.proba[:, data.positive]
            report["threshold"] = prediction.threshold | {
                "table": threshold_table(
                    score, data.y == data.positive, prediction.threshold["value"]
                )
            }
        error = (data.p != data.y).astype(np.float64)
    else:
        assert data.values is not None and data.predicted is not None
        error = np.abs(data.predicted - data.values)
    report["regressions"] = _regression_checks(
        ws,
        subject.split,
        prediction,
        part,
        masks,
        focus_metric,
        boot,
        seed,
        production=lambda: _production(ws, subject, info, table, prediction, kind),
    )

    discovery = spec.discovery
    columns = _discovery_columns(ws, info, subject.features, evaluated)
    conditions = candidate_conditions(evaluated, columns, min_support=discovery.min_support)
    found = discover_slices(
        conditions,
        error,
        max_conditions=discovery.max_conditions,
        min_support=discovery.min_support,
        min_effect=discovery.min_effect,
        alpha=spec.alpha,
    )
    report["discovery"] = found | {
        "columns": columns,
        "error": "misclassification" if data.kind != "regression" else "absolute error",
    }
    report["risks"] = judge_risks(plan, data.kind, overall, reports, found["slices"])
    report["gates"] = judge_gates(plan, data.kind, overall, reports, report["regressions"])
    report["passed"] = not any(g["state"] == "fail" for g in report["gates"])
    if subject.source is not None:
        report["source"] = subject.source
    return _store(ws, subject, split_info, info, report, out)


# -- storing -------------------------------------------------------------------------------------


def _write_staged(folder: Path, files: Mapping[str, bytes]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    staged = {}
    for name, blob in files.items():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        Path(tmp).chmod(0o644)  # mkstemp makes it private; a report is for sharing
        staged[name] = Path(tmp)
    return staged


def _store(
    ws: Workspace,
    subject: _Subject,
    split_info: Any,
    info: Any,
    report: dict[str, Any],
    out: str | Path | None,
) -> Evaluation:
    report = json_safe(report)
    model = subject.model
    approvals = [a.to_dict() for a in list_approvals(ws, DEPLOY_GATE) if a.subject == subject.name]
    report["approvals"] = approvals
    card_md, card_html = model_card(ws, subject, info, report)
    html = render_report(report)
    payload = json.dumps(report, indent=1, allow_nan=False).encode()
    blobs = {
        "evaluation.html": html.encode(),
        "model-card.md": card_md.encode(),
        "model-card.html": card_html.encode(),
        "evaluation.json": payload,
    }
    folder = Path(out) if out is not None else ws.root / "reports" / subject.name
    if not folder.is_absolute():
        folder = ws.root / folder
    staged = _write_staged(folder, blobs)
    artifacts = ws.store.artifacts
    parameters = {
        "model": subject.name,
        "split": split_info.ref,
        "part": report["part"],
        "bootstrap": report["bootstrap"],
        "seed": report["seed"],
        "threshold": (report.get("threshold") or {}).get("value"),
    }
    try:
        with artifacts.staged(), ws.record("evaluate", parameters) as run:
            if model is not None:
                run.input("model", model.name, sha256=model.package["model.onnx"])
            if subject.source is not None:
                run.input("file", subject.source["path"], sha256=subject.source["sha256"])
            run.input("split", split_info.ref, sha256=split_info.artifact_sha256)
            stored = {}
            for name, blob in blobs.items():
                ref = artifacts.put_bytes(blob)
                ArtifactStore.register(
                    run.session, ref, kind=f"evaluation:{name}", media_type=_media(name)
                )
                stored[name] = ref.sha256
                run.output("report", f"{subject.name}/{name}", sha256=ref.sha256)
            threshold = report.get("threshold")
            if threshold is not None and model is not None and report["part"] == "test":
                _record_threshold(ws, run, model.name, threshold)
            run.report("evaluation", report | {"artifacts": stored, "run_id": run.id})
    except BaseException:
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise
    files = {}
    for name, tmp in staged.items():
        final = folder / name
        tmp.replace(final)
        files[name] = final
    return Evaluation(subject.name, report, files)


def _record_threshold(ws: Workspace, run: Any, model: str, threshold: dict[str, Any]) -> None:
    """Write the chosen decision threshold into the model package's metadata."""
    session = run.session
    record = session.scalar(ws.select(ModelRecord).where(ModelRecord.name == model))
    assert record is not None
    metadata = _read_json(ws, record.package["metadata.json"])
    metadata["threshold"] = threshold["value"]
    metadata["threshold_choice"] = {
        k: threshold.get(k) for k in ("criterion", "chosen_on", "criterion_value")
    } | {"run_id": run.id}
    artifacts = ws.store.artifacts
    ref = artifacts.put_bytes(json.dumps(metadata, indent=1, default=str).encode())
    ArtifactStore.register(session, ref, kind="model:metadata.json", media_type="application/json")
    record.package = dict(record.package) | {"metadata.json": ref.sha256}
    run.output("model", model, sha256=record.package["model.onnx"])


def _media(name: str) -> str:
    return {
        ".html": "text/html",
        ".md": "text/markdown",
        ".json": "application/json",
    }[Path(name).suffix]


@dataclass(frozen=True)
class EvaluationInfo:
    """A stored evaluation: ``evaluation.json`` as it was kept (``report``), with when and by
    which run."""

    model: str
    report: dict[str, Any]
    run_id: str
    created_at: dt.datetime

    @classmethod
    def from_report(cls, stored: ReportInfo) -> EvaluationInfo:
        """From the store's report."""
        return cls(stored.report["model"], stored.report, stored.run_id, stored.created_at)

    @property
    def external(self) -> bool:
        """Predictions made elsewhere (``evaluate_predictions``), not a registered model."""
        return "source" in self.report

    @property
    def passed(self) -> bool:
        """No gate failed."""
        return bool(self.report["passed"])

    @property
    def gates(self) -> list[dict[str, Any]]:
        """Every gate of the plan with its state (pass, fail or unchecked) and evidence."""
        return list(self.report["gates"])

    @property
    def failed_gates(self) -> list[dict[str, Any]]:
        """The gates that failed."""
        return [g for g in self.gates if g["state"] == "fail"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: the report with its time."""
        return self.report | {"created_at": self.created_at.isoformat()}


def list_evaluations(
    ws: Workspace, model: str | None = None, *, external: bool | None = None
) -> list[EvaluationInfo]:
    """Stored evaluations, oldest first: of one model (or predictions name), and only of
    registered models (``external=False``) or of predictions made elsewhere (``True``)."""
    found = [EvaluationInfo.from_report(r) for r in ws.reports("evaluation")]
    return [
        e
        for e in found
        if (model is None or e.model == model) and (external is None or e.external == external)
    ]


def latest_evaluation(ws: Workspace, model: str | None = None) -> EvaluationInfo | None:
    """The newest stored evaluation of a registered model (``model``, else any), if any."""
    found = ws.latest_report(
        "evaluation",
        where=lambda r: "source" not in r and (model is None or r["model"] == model),
    )
    return None if found is None else EvaluationInfo.from_report(found)


def raise_for_gates(evaluation: Evaluation) -> None:
    """``--gate``: a failed gate is an error (exit 1) that names each one."""
    failed = evaluation.failed_gates
    if failed:
        approved = evaluation.report.get("approvals")
        raise CheckFailedError(
            f"{len(failed)} gate(s) failed for {evaluation.model}: "
            + "; ".join(f"{g['id']} ({g['evidence']})" for g in failed)
            + (
                f". {approved[-1]['by']} approved deploying it anyway"
                if approved
                else f". It can be deployed only with a recorded approval of {DEPLOY_GATE!r}"
            )
        )
