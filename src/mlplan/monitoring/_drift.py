"""Drift of a window against the model's training reference: per input feature, and of the
outputs (predicted classes, scores, values), each with the method that measured it and why.

How a method is chosen (``monitoring.drift_method: auto``, the default):

- a number: fewer than :data:`MIN_ROWS` values in the window: not tested; up to
  :data:`LARGE_ROWS`: the two-sample Kolmogorov–Smirnov test against the training values
  (exact, or within the training quantiles' rank error, stated as ``error_bound``), drifted
  below a p-value of 0.05 (against quantiles, only if the statistic less their error bound is
  significant: their error alone is no drift); more: PSI on the training deciles,
  drifted above ``drift_threshold`` (0.2) — at that size a test flags shifts far too small
  to matter;
- a category: fewer than :data:`MIN_ROWS` values: not tested; up to :data:`CHI2_ROWS` values
  while every expected count of the 2×k table is at least :data:`MIN_EXPECTED`: chi-square of
  homogeneity, drifted below a p-value of 0.05; else the Jensen–Shannon distance (base 2),
  drifted above 0.1 (``drift_threshold`` with ``drift_method: jensenshannon``). The switch is
  Evidently's: past a thousand values chi-square finds a shift of half a percentage point
  significant, while the distance grows with the shift, not with the rows. Categories past the
  reference's top ones, and those it never saw, are one bin (``other``);
- a method named in the plan (``psi``, ``ks``, ``chi2``, ``jensenshannon``) is used wherever it
  applies: numbers are binned at the training deciles for chi-square and Jensen–Shannon;
  categories take chi-square under ``ks``. With ``drift_threshold`` set, it is that method's
  threshold (a p-value for ``ks`` and ``chi2``).

Missing values are not part of a test: each feature reports its missing share beside the
reference's. The statistics are :mod:`mlplan.core`'s, each equal to SciPy's; the work is
column-wise in Arrow and numpy (a million rows of 25 columns in about a second).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.core import bin_counts, chi2_counts, jensenshannon, kolmogorov_sf, ks_weighted, psi
from mlplan.errors import DataError
from mlplan.modeling import CategoricalReference, NumericReference, TrainingReference
from mlplan.plan import MonitoringSpec

__all__ = [
    "CHI2_ROWS",
    "LARGE_ROWS",
    "MIN_EXPECTED",
    "MIN_ROWS",
    "DriftMethod",
    "DriftReport",
    "FeatureDrift",
    "feature_drift",
    "output_drift",
]

DriftMethod = Literal["ks", "psi", "chi2", "jensenshannon", "none"]
MIN_ROWS = 30
"""Fewer values in a window than this: a feature is not tested."""
LARGE_ROWS = 10_000
"""Above this many values of a number, auto measures PSI, not the Kolmogorov–Smirnov test."""
CHI2_ROWS = 1_000
"""Above this many values of a category, auto measures the Jensen–Shannon distance, not
chi-square (as Evidently does): a test on more rows flags shifts too small to matter."""
MIN_EXPECTED = 5
"""Chi-square needs every expected count of its table at least this (Cochran's rule)."""
P_VALUE = 0.05
JS_DISTANCE = 0.1
_OTHER = "(other)"


@dataclass(frozen=True)
class FeatureDrift:
    """How one feature (or output) of a window moved from the training reference.

    ``method`` measured it for ``reason``; ``statistic`` (the KS statistic, PSI, chi-square
    or Jensen–Shannon distance), ``p_value`` for a test, ``threshold`` and ``drifted`` (None
    when not tested). ``rows``: the window's values (missing ones aside); ``missing_rate``
    beside ``reference_missing_rate``; ``unseen``: values of categories training never saw
    (counted when the reference lists every category); ``out_of_range``: numbers outside the
    training range; ``error_bound``: how far a KS statistic against the training quantiles
    may be from the exact one."""

    feature: str
    kind: Literal["number", "string", "image", "class", "score", "value"]
    method: DriftMethod
    reason: str
    rows: int
    reference_rows: int
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    drifted: bool | None = None
    missing_rate: float | None = None
    reference_missing_rate: float | None = None
    unseen: int = 0
    out_of_range: int = 0
    error_bound: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (NaN as None)."""
        out = dict(self.__dict__)
        for key in ("statistic", "p_value", "missing_rate", "reference_missing_rate"):
            value = out[key]
            out[key] = None if value is None or not math.isfinite(value) else value
        return out


@dataclass(frozen=True)
class DriftReport:
    """A window's drift: per input feature (``features``), per output (``outputs``), and the
    reference's inputs the window did not hold (``absent``)."""

    rows: int
    features: tuple[FeatureDrift, ...]
    outputs: tuple[FeatureDrift, ...] = ()
    absent: tuple[str, ...] = ()

    @property
    def drifted(self) -> list[str]:
        """The features and outputs that drifted."""
        return [d.feature for d in (*self.features, *self.outputs) if d.drifted]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "rows": self.rows,
            "drifted": self.drifted,
            "features": [d.to_dict() for d in self.features],
            "outputs": [d.to_dict() for d in self.outputs],
            "absent": list(self.absent),
        }


@dataclass(frozen=True)
class _Settings:
    method: Literal["auto", "psi", "ks", "chi2", "jensenshannon"]
    thresholds: Mapping[str, float]


def _settings(monitoring: MonitoringSpec) -> _Settings:
    method = monitoring.drift_method
    thresholds = {
        "psi": monitoring.drift_threshold,
        "ks": P_VALUE,
        "chi2": P_VALUE,
        "jensenshannon": JS_DISTANCE,
    }
    if "drift_threshold" in monitoring.model_fields_set:
        if method in ("ks", "chi2"):
            thresholds["ks"] = thresholds["chi2"] = monitoring.drift_threshold
        elif method == "jensenshannon":
            thresholds["jensenshannon"] = monitoring.drift_threshold
    return _Settings(method, thresholds)


def feature_drift(
    reference: TrainingReference,
    current: pa.Table,
    monitoring: MonitoringSpec,
    *,
    predicted: np.ndarray | None = None,
    proba: np.ndarray | None = None,
    values: np.ndarray | None = None,
    positive: str | None = None,
) -> DriftReport:
    """The drift of a window's input columns (``current``, one column per input as the
    server received it; an image model's ``width``, ``height``, ``brightness``,
    ``contrast``) against the training ``reference``, each feature measured as the module
    says, with the plan's ``monitoring`` defaults; and, given the window's outputs, their
    drift too (:func:`output_drift`).

    Raises
    ------
    DataError
        A numeric input whose window column holds values that are not numbers.

    Examples
    --------
    >>> from mlplan.modeling._reference import numeric_reference_of
    >>> rng = np.random.default_rng(0)
    >>> age = numeric_reference_of("age", rng.normal(40, 9, 20_000))
    >>> reference = TrainingReference("customers@1/s1", 20_000, {"age": age})
    >>> window = pa.table({"age": rng.normal(46, 9, 2_000)})
    >>> (drift,) = feature_drift(reference, window, MonitoringSpec()).features
    >>> drift.method, drift.drifted, drift.p_value < 1e-6
    ('ks', True, True)
    """
    settings = _settings(monitoring)
    rows = current.num_rows
    measured: list[FeatureDrift] = []
    absent: list[str] = []
    expected: list[tuple[str, NumericReference | CategoricalReference]] = [
        *reference.inputs.items(),
        *reference.images.items(),
    ]
    for name, ref in expected:
        if name not in current.column_names:
            absent.append(name)
            continue
        column = current.column(name)
        if isinstance(ref, NumericReference):
            kind: Literal["number", "image"] = "image" if name in reference.images else "number"
            measured.append(_numeric(name, kind, ref, _numbers(name, column), settings))
        else:
            measured.append(_categorical(name, "string", ref, column, settings))
    outputs: tuple[FeatureDrift, ...] = ()
    if predicted is not None or values is not None:
        outputs = output_drift(
            reference,
            monitoring,
            predicted=predicted,
            proba=proba,
            values=values,
            positive=positive,
        )
    return DriftReport(rows, tuple(measured), outputs, tuple(absent))


def output_drift(
    reference: TrainingReference,
    monitoring: MonitoringSpec,
    *,
    predicted: np.ndarray | None = None,
    proba: np.ndarray | None = None,
    values: np.ndarray | None = None,
    positive: str | None = None,
) -> tuple[FeatureDrift, ...]:
    """The drift of a window's outputs against the validation split's: a classifier's
    predicted classes (``predicted``) as a category, and its scores (``proba``, one column
    per class of the reference) as numbers — of the ``positive`` class for a binary model
    (default: its second class), of every class for a multiclass one; a regressor's
    ``values`` as a number. A reference without an output gives nothing."""
    output = reference.output
    if output is None:
        return ()
    settings = _settings(monitoring)
    if output.kind == "regression":
        if values is None or output.values is None:
            return ()
        numbers = np.asarray(values, np.float64)
        return (_numeric("prediction", "value", output.values, numbers, settings),)
    out: list[FeatureDrift] = []
    if predicted is not None:
        shares = CategoricalReference(
            "predicted class", output.rows, 0, dict(output.predicted), 0, 0
        )
        labels = pa.array(np.asarray(predicted).astype(str))
        out.append(_categorical("predicted class", "class", shares, labels, settings))
    if proba is not None:
        classes = list(output.classes)
        scored = classes
        if len(classes) == 2:
            scored = [positive if positive in classes else classes[1]]
        for name in scored:
            column = np.asarray(proba, np.float64)[:, classes.index(name)]
            out.append(_numeric(f"score {name}", "score", output.scores[name], column, settings))
    return tuple(out)


def _numbers(name: str, column: pa.ChunkedArray) -> np.ndarray:
    """A window column as float64, NaN for a missing value."""
    try:
        as_float = pc.cast(column, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DataError(
            f"input {name!r} of the window holds {column.type} values that are not numbers "
            f"({error}); the model was trained on numbers"
        ) from None
    return np.asarray(
        pc.fill_null(as_float, math.nan).to_numpy(zero_copy_only=False), dtype=np.float64
    )


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _numeric(
    name: str,
    kind: Literal["number", "image", "score", "value"],
    ref: NumericReference,
    numbers: np.ndarray,
    settings: _Settings,
) -> FeatureDrift:
    finite = np.isfinite(numbers)
    present = numbers[finite]
    n = len(present)
    common: dict[str, Any] = {
        "feature": name,
        "kind": kind,
        "rows": n,
        "reference_rows": ref.present,
        "missing_rate": _rate(len(numbers) - n, len(numbers)),
        "reference_missing_rate": _rate(ref.missing, ref.rows),
    }
    if ref.min is not None and ref.max is not None and n:
        common["out_of_range"] = int(np.count_nonzero((present < ref.min) | (present > ref.max)))
    if not ref.present:
        return FeatureDrift(**common, method="none", reason="no values in training to compare")
    method = settings.method
    if method == "auto":
        if n < MIN_ROWS:
            return FeatureDrift(
                **common, method="none", reason=f"{n} values: too few to test ({MIN_ROWS})"
            )
        if n <= LARGE_ROWS:
            method = "ks"
            reason = f"a number, {n:,} values: Kolmogorov-Smirnov against the training values"
        else:
            method = "psi"
            reason = (
                f"a number, {n:,} values: PSI on the training deciles (a test at this size "
                "flags shifts too small to matter)"
            )
    else:
        reason = f"the plan's drift_method: {method}"
    if not n:
        return FeatureDrift(**common, method="none", reason="no values in the window")
    threshold = settings.thresholds[method]
    if method == "ks":
        values, weights = ref.distribution()
        test = ks_weighted(present, values, weights, rows=ref.present)
        p_value = test.p_value
        if ref.rank_error:
            # Against quantiles, drifted only if the least statistic the training rows could
            # give is significant: the quantiles' own error is no drift.
            m = ref.present
            least = max(test.statistic - ref.rank_error, 0.0)
            p_value = kolmogorov_sf(least, max(round(m * n / (m + n)), 1))
            reason += (
                f" (quantiles: within {ref.rank_error:.2%}, judged at the statistic less that)"
            )
        return FeatureDrift(
            **common,
            method="ks",
            reason=reason,
            statistic=test.statistic,
            p_value=test.p_value,
            threshold=threshold,
            drifted=p_value is not None and p_value < threshold,
            error_bound=ref.rank_error,
        )
    counts = bin_counts(present, np.asarray(ref.edges)).astype(np.float64)
    expected = np.asarray(ref.bin_counts, np.float64)
    return _compare(common, method, reason, threshold, expected, counts)


def _categorical(
    name: str,
    kind: Literal["string", "class"],
    ref: CategoricalReference,
    column: pa.ChunkedArray | pa.Array,
    settings: _Settings,
) -> FeatureDrift:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    strings = pc.cast(column, pa.string())
    n = len(strings) - strings.null_count
    common: dict[str, Any] = {
        "feature": name,
        "kind": kind,
        "rows": n,
        "reference_rows": ref.present,
        "missing_rate": _rate(strings.null_count, len(strings)),
        "reference_missing_rate": _rate(ref.missing, ref.rows),
    }
    if ref.redacted:
        return FeatureDrift(
            **common, method="none", reason="personal data: training kept no values to compare"
        )
    counted = pc.value_counts(strings.drop_null())
    window = dict(
        zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True)
    )
    listed = list(ref.categories)
    actual = np.array([window.get(c, 0) for c in listed] + [0], np.float64)
    actual[-1] = n - actual[:-1].sum()  # past the reference's top, or never seen: one bin
    expected = np.array([ref.categories[c] for c in listed] + [ref.other_rows], np.float64)
    if not ref.other_categories:
        common["unseen"] = int(actual[-1])
    if not ref.present:
        return FeatureDrift(**common, method="none", reason="no values in training to compare")
    method = settings.method
    if method == "auto":
        if n < MIN_ROWS:
            return FeatureDrift(
                **common, method="none", reason=f"{n} values: too few to test ({MIN_ROWS})"
            )
        least = _least_expected(expected, actual)
        if n <= CHI2_ROWS and least >= MIN_EXPECTED:
            method = "chi2"
            reason = f"a category, {n:,} values, each expected count >= {MIN_EXPECTED}: chi-square"
        elif n > CHI2_ROWS:
            method = "jensenshannon"
            reason = (
                f"a category, {n:,} values: Jensen-Shannon distance (a test above "
                f"{CHI2_ROWS:,} values flags shifts too small to matter)"
            )
        else:
            method = "jensenshannon"
            reason = (
                f"a category, an expected count of {least:.1f} < {MIN_EXPECTED}: too small for "
                "chi-square; Jensen-Shannon distance"
            )
    else:
        reason = f"the plan's drift_method: {method}"
        if method == "ks":
            method = "chi2"
            reason += " (categories: chi-square)"
    if not n:
        return FeatureDrift(**common, method="none", reason="no values in the window")
    return _compare(common, method, reason, settings.thresholds[method], expected, actual)


def _least_expected(expected: np.ndarray, actual: np.ndarray) -> float:
    """The least expected count of the 2×k table of two count vectors (empty columns aside)."""
    table = np.vstack([expected, actual])
    table = table[:, table.sum(axis=0) > 0]
    total = table.sum()
    if not total:
        return 0.0
    return float((np.outer(table.sum(axis=1), table.sum(axis=0)) / total).min())


def _compare(
    common: dict[str, Any],
    method: str,
    reason: str,
    threshold: float,
    expected: np.ndarray,
    actual: np.ndarray,
) -> FeatureDrift:
    """A binned comparison: PSI, chi-square or Jensen–Shannon of two count vectors."""
    if method == "chi2":
        test = chi2_counts(expected, actual)
        assert test.p_value is not None
        return FeatureDrift(
            **common,
            method="chi2",
            reason=reason,
            statistic=test.statistic,
            p_value=test.p_value,
            threshold=threshold,
            drifted=bool(test.p_value < threshold),
        )
    if method == "psi":
        value = psi(expected, actual)
        name: DriftMethod = "psi"
    else:
        value = jensenshannon(expected, actual)
        name = "jensenshannon"
    return FeatureDrift(
        **common,
        method=name,
        reason=reason,
        statistic=value,
        threshold=threshold,
        drifted=bool(value > threshold),
    )
