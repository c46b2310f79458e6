"""``mlplan evaluate``: a model's package run on a split's rows (or predictions made
elsewhere matched to them), every analysis of the error, the gates judged, and the report,
model card and JSON written and stored as evidence.

This module is the orchestrator; each step lives in its own module: ``_predict`` (the
package on the rows, the threshold), ``_external`` (a file of predictions), ``_assemble``
(the analyses and the report), ``_regressions`` (the older system, production) and
``_records`` (storing, listing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplan.data import Engine, check_engine, get_split
from mlplan.errors import CheckFailedError, DataError, ParameterError
from mlplan.evaluation._assemble import analyse
from mlplan.evaluation._external import match_predictions
from mlplan.evaluation._input import PARTS, EvaluationInput, LoadedSplit, Part, Subject
from mlplan.evaluation._predict import package_metadata, predict_model
from mlplan.evaluation._prediction_file import check_predictions_out, write_predictions
from mlplan.evaluation._records import store_evaluation
from mlplan.modeling import ModelInfo, SliceReport, get_model, list_models, read_predictions
from mlplan.plan import NAME_PATTERN
from mlplan.store import sha256_file
from mlplan.workspace import DEPLOY_GATE, PRODUCTION, Workspace

__all__ = ["Evaluation", "evaluate", "evaluate_predictions", "raise_for_gates"]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: its slice reports, the report as stored, where its files were
    written, and whether every gate passed.

    ``overall`` and ``slices`` are the metric engine's :class:`SliceReport` objects as the run
    computed them (bootstrap draws included), in the manner of fairlearn's ``MetricFrame``:
    ``overall.overall`` maps each metric to its estimate over every row evaluated, and
    ``slices[name].by_group`` each value of the plan's slice ``name`` to its estimates.
    ``report`` is ``evaluation.json`` as stored: the same figures as JSON, and the error
    types, where to focus, regressions, discovered slices, risks, gates and approvals.

    Examples
    --------
    ::

        evaluation = evaluate(ws, "gbt-1")
        evaluation.overall.overall["roc_auc"]    # MetricEstimate(value=.., low=.., high=..)
        region = evaluation.slices["region"]
        region.by_group["region=west"]["accuracy"].value
        region.difference("accuracy", min_count=30)   # largest gap between regions
        evaluation.passed, evaluation.files["model-card.md"]
    """

    model: str
    report: dict[str, Any]
    files: dict[str, Path]
    overall: SliceReport
    slices: dict[str, SliceReport]

    @property
    def passed(self) -> bool:
        """No gate failed."""
        return bool(self.report["passed"])

    @property
    def failed_gates(self) -> list[dict[str, Any]]:
        """The gates that failed."""
        return [g for g in self.report["gates"] if g["state"] == "fail"]

    @property
    def package(self) -> dict[str, Any] | None:
        """The package version evaluated (``ref``, ``version``, ``sha256``, ``parent``,
        ``new``: registered by this evaluation), None for predictions made elsewhere or
        decisions at a threshold no package holds."""
        found: dict[str, Any] | None = self.report.get("package")
        return found

    @property
    def run_id(self) -> str:
        """The evaluation's id (its run's), which a deploy approval names."""
        return str(self.report.get("run_id", ""))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: the report as stored, with its files."""
        return self.report | {"files": {k: str(v) for k, v in self.files.items()}}


def evaluate(
    ws: Workspace,
    model: str,
    *,
    part: Part = "test",
    threshold: float | str | None = None,
    n_boot: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    predictions_out: str | Path | None = None,
    engine: Engine = "local",
    deployment: str = PRODUCTION,
) -> Evaluation:
    """Evaluate ``model`` on the ``part`` rows of its split and store the evidence.

    Parameters
    ----------
    part
        Which rows of the model's split: test (default), valid or train.
    model
        A registered model's name (its newest package version) or one version exactly
        (``gbt-1@2``).
    threshold
        Binary: a fixed decision threshold, or ``f1``/``youden``/``recall>=X`` (the
        highest threshold whose recall is at least X) to choose it on the validation rows;
        unset: the threshold an earlier evaluation gave the package, else
        ``evaluation.threshold`` of the plan. A package never changes: evaluated on the test
        rows with another threshold than its own, the model gets a new package version
        holding it (``gbt-1@3``, derived from the one evaluated), and the evaluation is of
        that version. What is deployed changes only with ``deploy``.
    n_boot
        Bootstrap resamples (default: ``evaluation.bootstrap``).
    out
        Folder for the report, model card and JSON (default: ``reports/<model>``).
    predictions_out
        Also write the predictions on the rows evaluated to this ``.csv`` or ``.parquet``
        file (``files["predictions"]``): row, item id, label, scores, the decision at the
        threshold and the slice groups, to recompute any figure independently.
    engine
        Where the package runs on the rows: in this process, or on Ray Data (``ray``: the
        cluster at ``RAY_ADDRESS``, else a local one), with the same predictions; the
        analysis runs here either way, so the report is the same.
    deployment
        The deployment whose model the candidate must not be worse than, per slice value
        (default: production).

    Raises
    ------
    ParameterError
        A ``part``, ``threshold``, ``n_boot`` or ``engine`` the function cannot take.
    MissingExtraError
        ``engine="ray"`` without Ray installed.
    DataError
        A slice column the data lacks (close names suggested), a slice without rows, no
        rows to evaluate on.
    UsageError
        A gate or risk whose metric does not apply to the task.
    """
    boot = _check_options(ws, part, n_boot)
    check_engine(engine)
    check_predictions_out(predictions_out)
    found = get_model(ws, model)
    split = LoadedSplit.load(ws, get_split(ws, found.split))
    own = None if threshold is not None else _package_threshold(ws, found)
    prediction = predict_model(
        ws, found, split, part=part, threshold=threshold if own is None else own, engine=engine
    )
    if own is not None and prediction.threshold is not None:
        prediction.threshold["note"] = f"the threshold of the package {found.ref}"
    subject = Subject.of_model(found)
    return _run(
        ws,
        EvaluationInput(subject, split, prediction, part, boot, seed, out, deployment, engine),
        predictions_out,
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
    predictions_out: str | Path | None = None,
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
    predictions_out
        As for :func:`evaluate`: the predictions matched to the rows, written out.

    Raises
    ------
    DataError
        Item ids that do not match the split's rows (missing, unknown or repeated ones are
        named), or a file without item_id / prediction.
    ParameterError
        A name that is not a valid name or that a registered model already has; a ``part``
        or ``n_boot`` the function cannot take.
    """
    boot = _check_options(ws, part, n_boot)
    check_predictions_out(predictions_out)
    path = ws.resolve(predictions)
    if not path.is_file():
        raise DataError(f"{path}: no such file of predictions")
    name = name or path.stem
    if not NAME_PATTERN.fullmatch(name):
        raise ParameterError(
            "name",
            f"{{param}} {name!r} must start with a letter and hold only letters, digits, "
            "'_', '.' or '-'",
        )
    if any(m.name == name for m in list_models(ws)):
        raise ParameterError(
            "name", f"{name!r} is a registered model; give these predictions another {{param}}"
        )
    given = read_predictions(path)
    loaded = LoadedSplit.load(ws, get_split(ws, split))
    prediction = match_predictions(ws, path, given, loaded, part=part)
    source = sha256_file(path).sha256
    subject = Subject.of_file(name, loaded.ref, path=ws.relative(path), sha256=source)
    return _run(
        ws, EvaluationInput(subject, loaded, prediction, part, boot, seed, out), predictions_out
    )


def _package_threshold(ws: Workspace, model: ModelInfo) -> float | None:
    """The threshold an evaluation gave ``model``'s package (None: it holds training's)."""
    metadata = package_metadata(ws, model.package)
    if metadata.get("threshold_choice") is None or metadata.get("threshold") is None:
        return None
    return float(metadata["threshold"])


def _check_options(ws: Workspace, part: str, n_boot: int | None) -> int:
    if part not in PARTS:
        raise ParameterError("part", f"{{param}} must be train, valid or test; got {part!r}")
    boot = ws.plan.evaluation.bootstrap if n_boot is None else n_boot
    if boot < 0:
        raise ParameterError("n_boot", f"{{param}} must be 0 or more; got {boot}")
    return boot


def _run(
    ws: Workspace, inp: EvaluationInput, predictions_out: str | Path | None = None
) -> Evaluation:
    """Analyse, then store: nothing is written when an analysis fails."""
    analysis = analyse(ws, inp)
    stored = store_evaluation(ws, inp, analysis.report)
    files = dict(stored.files)
    if predictions_out is not None:
        files["predictions"] = write_predictions(ws, inp, predictions_out).path
    return Evaluation(inp.subject.name, stored.report, files, analysis.overall, analysis.slices)


def raise_for_gates(evaluation: Evaluation) -> None:
    """``--gate``: a failed gate is an error (exit 1) that names each one, and the approval
    that would let this evaluation's package ship anyway."""
    failed = evaluation.failed_gates
    if failed:
        package = evaluation.package
        how = (
            f": mlplan approve {DEPLOY_GATE} --subject {package['ref']} --evaluation "
            f"{evaluation.run_id} ..."
            if package
            else ""
        )
        raise CheckFailedError(
            f"{len(failed)} gate(s) failed for {evaluation.model}: "
            + "; ".join(f"{g['id']} ({g['evidence']})" for g in failed)
            + f". It can be deployed only with a recorded approval of {DEPLOY_GATE!r} naming "
            f"this evaluation{how}"
        )
