"""What the rollout analysis measures: each guard metric on the two arms of a group of
requests, with its test (see ``_analysis.py`` for the rules that judge them), and what each
arm's answers look like. Pure: the arms come from ``_observe.py``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplan.core import (
    LOWER_IS_BETTER,
    bin_counts,
    binomial_cdf,
    binomial_sf,
    chi2_sf,
    normal_sf,
    psi,
    quantile_edges,
)
from mlplan.errors import MlplanError
from mlplan.modeling import PredictionKind, Predictions, metrics_for, slice_metrics

__all__ = [
    "GUARD_METRICS",
    "ArmSample",
    "Measure",
    "Rule",
    "Setting",
    "View",
    "holds",
    "measure_of",
    "shift",
    "sliced",
    "summary",
    "whole",
]

GUARD_METRICS = (
    "error_rate",
    "latency_p99_ms",
    "latency_p99_ratio",
    "null_rate",
    "prediction_psi",
    "class_share_shift",
    "positive_rate_ratio",
    "agreement",
    "human_agreement",
)
"""The guard metrics of the answers themselves; the metric engine's (and ``<metric>_drop``)
come on top."""

_BOOTSTRAP = 500
_PSI_BINS = 10


@dataclass(frozen=True)
class ArmSample:
    """One arm's answers in the window: per request its status as an error or not and its
    latency; per record of an answered request (2xx) the request it belongs to, its label
    (classification; None when null) and class probabilities (columns in ``classes`` order,
    NaN when null) or value (regression; NaN when null), the feedback label and human
    decision (None when none came), and its row in each slice's masks."""

    model: str
    version: str
    request_ids: np.ndarray
    errors: np.ndarray
    latency_ms: np.ndarray
    refused: int
    row_request: np.ndarray
    labels: np.ndarray
    proba: np.ndarray | None
    values: np.ndarray | None
    truth: np.ndarray
    decisions: np.ndarray
    slices: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        """Requests counted (validation refusals are not)."""
        return len(self.request_ids)

    @property
    def rows(self) -> int:
        """Records of answered requests."""
        return len(self.row_request)


@dataclass(frozen=True)
class Setting:
    """What the metrics need to know of the rollout and its models."""

    strategy: str
    kind: PredictionKind
    classes: tuple[str, ...]
    positive: str | None
    pairs: tuple[np.ndarray, np.ndarray] | None  # a shadow's (stable row, candidate row)


@dataclass(frozen=True)
class Measure:
    """A metric on one group: the values, the requests each arm had there, the test."""

    candidate: float | None
    stable: float | None
    n_candidate: int
    n_stable: int
    test: str
    p_value: float | None = None
    missing: str | None = None
    reads_stable: bool = True


@dataclass(frozen=True)
class View:
    """An arm restricted to a group: its requests and records there."""

    arm: ArmSample
    requests: np.ndarray  # indices of requests
    rows: np.ndarray  # indices of records


def holds(value: float, op: str, threshold: float) -> bool:
    """Whether ``value`` satisfies ``op threshold`` (NaN never does)."""
    if math.isnan(value):
        return False
    return {
        "<": value < threshold,
        "<=": value <= threshold,
        ">": value > threshold,
        ">=": value >= threshold,
    }[op]


# -- groups ----------------------------------------------------------------------------------


def whole(arm: ArmSample) -> View:
    """The arm entire: every request and record."""
    return View(arm, np.arange(arm.requests), np.arange(arm.rows))


def within(arm: ArmSample, mask: np.ndarray) -> View:
    """The arm within a slice value: the records of ``mask`` and the requests they are
    from."""
    rows = np.flatnonzero(mask)
    requests = np.unique(arm.row_request[rows])
    return View(arm, requests, rows)


def sliced(
    name: str, stable: ArmSample, candidate: ArmSample
) -> dict[str | None, tuple[View, View]]:
    """Each value of the slice ``name`` in either arm: the two arms within it."""
    s_masks = stable.slices.get(name, {})
    c_masks = candidate.slices.get(name, {})
    out: dict[str | None, tuple[View, View]] = {}
    for value in sorted(set(s_masks) | set(c_masks)):
        s = s_masks.get(value, np.zeros(stable.rows, dtype=bool))
        c = c_masks.get(value, np.zeros(candidate.rows, dtype=bool))
        out[value] = (within(stable, s), within(candidate, c))
    return out


# -- metrics ---------------------------------------------------------------------------------

Metric = Callable[[View, View], Measure]
Rule = tuple[str, float]  # a guard's op and threshold


def measure_of(name: str, setting: Setting, rule: Rule) -> Metric:
    """The function that measures ``name`` on the two arms of a group, tested against
    ``rule``."""
    simple: dict[str, Callable[[View, View, Setting, Rule], Measure]] = {
        "error_rate": _error_rate,
        "latency_p99_ms": _latency_p99,
        "latency_p99_ratio": _latency_ratio,
        "null_rate": _null_rate,
        "prediction_psi": _psi_measure,
        "class_share_shift": _class_share_shift,
        "positive_rate_ratio": _positive_rate_ratio,
        "agreement": _agreement,
        "human_agreement": _human_agreement,
    }
    if name in simple:
        found = simple[name]
        return lambda s, c: found(s, c, setting, rule)
    base = name.removesuffix("_drop")
    if base in metrics_for(setting.kind) and base != "count":
        return lambda s, c: _engine_metric(s, c, setting, rule, base, drop=name != base)
    known = [*GUARD_METRICS, *(m for m in metrics_for(setting.kind) if m != "count")]

    def unknown(s: View, c: View) -> Measure:
        return Measure(
            None,
            None,
            len(c.requests),
            len(s.requests),
            "none",
            missing=f"mlplan knows no guard metric {name!r} for a {setting.kind} model; "
            f"known: {', '.join(known)} (and each with _drop for the engine's)",
        )

    return unknown


def _rate_test(x: int, n: int, rule: Rule) -> float | None:
    """One-sided exact binomial test of "the rate satisfies ``op threshold``" for ``x``
    hits in ``n``: its p-value (None when the threshold is not a rate)."""
    op, threshold = rule
    if not 0 <= threshold <= 1 or n == 0:
        return None
    if op in ("<", "<="):
        return binomial_sf(x, n, threshold)
    return binomial_cdf(x, n, threshold)


_BINOMIAL = "one-sided binomial test vs threshold"


def _error_rate(s: View, c: View, setting: Setting, rule: Rule) -> Measure:
    values = [
        float(v.arm.errors[v.requests].mean()) if v.requests.size else math.nan for v in (c, s)
    ]
    x = int(c.arm.errors[c.requests].sum())
    return Measure(
        values[0],
        values[1],
        len(c.requests),
        len(s.requests),
        _BINOMIAL,
        _rate_test(x, len(c.requests), rule),
        missing=None if c.requests.size else "the candidate answered no request",
        reads_stable=False,
    )


def _latency_p99(s: View, c: View, setting: Setting, rule: Rule) -> Measure:
    values = [_p99(v) for v in (c, s)]
    return Measure(
        values[0],
        values[1],
        len(c.requests),
        len(s.requests),
        "one-sided binomial test of the share above the threshold vs 1%",
        _quantile_test(c, rule),
        missing=None if c.requests.size else "the candidate answered no request",
        reads_stable=False,
    )


def _quantile_test(c: View, rule: Rule) -> float | None:
    """P-value of "the 99th percentile satisfies ``op threshold``": the requests past the
    threshold against 1 % of them (one-sided exact binomial)."""
    latency = c.arm.latency_ms[c.requests]
    if not latency.size:
        return None
    op, threshold = rule
    if op in ("<", "<="):
        return binomial_sf(int(np.sum(latency > threshold)), len(latency), 0.01)
    return binomial_cdf(int(np.sum(latency >= threshold)), len(latency), 0.01)


def _p99(v: View) -> float:
    latency = v.arm.latency_ms[v.requests]
    return float(np.quantile(latency, 0.99)) if latency.size else math.nan


def _latency_ratio(s: View, c: View, setting: Setting, rule: Rule) -> Measure:
    cand, stable = _p99(c), _p99(s)
    ok = math.isfinite(cand) and math.isfinite(stable) and stable > 0
    return Measure(
        cand / stable if ok else None,
        None,
        len(c.requests),
        len(s.requests),
        "none: a ratio of quantiles",
        missing=None if ok else "no latency of both arms to compare",
    )


def _null_rows(v: View) -> np.ndarray:
    arm = v.arm
    if arm.values is not None:
        return np.asarray(np.isnan(arm.values[v.rows]), dtype=bool)
    nulls = np.asarray([label is None for label in arm.labels[v.rows]], dtype=bool)
    if arm.proba is not None and arm.proba.shape[1]:
        nulls |= np.isnan(arm.proba[v.rows]).any(axis=1)
    return nulls


def _null_rate(s: View, c: View, setting: Setting, rule: Rule) -> Measure:
    values = [float(_null_rows(v).mean()) if v.rows.size else math.nan for v in (c, s)]
    return Measure(
        values[0],
        values[1],
        len(c.requests),
        len(s.requests),
        _BINOMIAL,
        _rate_test(int(_null_rows(c).sum()), len(c.rows), rule),
        missing=None if c.rows.size else "the candidate answered no record",
        reads_stable=False,
    )


def _label_rows(v: View) -> np.ndarray:
    """The labels of the group's records that have one."""
    labels = v.arm.labels[v.rows]
    kept = (
        labels[np.asarray([x is not None for x in labels], dtype=bool)] if labels.size else labels
    )
    return np.asarray(kept, dtype=object)


def _shares(v: View, classes: Sequence[str]) -> tuple[np.ndarray, int]:
    labels = _label_rows(v)
    counts = np.asarray([np.sum(labels == k) for k in classes], dtype=np.float64)
    return counts, len(labels)


def _all_classes(s: View, c: View, setting: Setting) -> list[str]:
    seen = {str(x) for x in (*_label_rows(s), *_label_rows(c))}
    return [*setting.classes, *sorted(seen - set(setting.classes))]


def _scores(v: View, setting: Setting) -> np.ndarray:
    """What a PSI compares: the positive class's score, or the values (finite ones)."""
    arm = v.arm
    if arm.values is not None:
        out = arm.values[v.rows]
    else:
        assert arm.proba is not None and setting.positive is not None
        out = arm.proba[v.rows, setting.classes.index(setting.positive)]
    return np.asarray(out[np.isfinite(out)], dtype=np.float64)


def _binned(stable: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both in bins cut at the stable values' deciles."""
    edges = quantile_edges(stable, _PSI_BINS)
    return bin_counts(stable, edges), bin_counts(candidate, edges)


def _psi_of(s: View, c: View, setting: Setting) -> tuple[float | None, str | None]:
    if setting.kind == "multiclass":
        classes = _all_classes(s, c, setting)
        (sc, sn), (cc, cn) = _shares(s, classes), _shares(c, classes)
        if not sn or not cn:
            return None, "no labels of both arms to compare"
        return psi(sc, cc), None
    if setting.kind == "binary" and setting.positive is None:
        return None, "a binary model without a positive class"
    ss, cs = _scores(s, setting), _scores(c, setting)
    if not ss.size or not cs.size:
        return None, "no scores of both arms to compare"
    return psi(*_binned(ss, cs)), None


def _psi_measure(s: View, c: View, setting: Setting, rule: Rule) -> Measure:
    value, missing = _psi_of(s, c, setting)
    return Measure(
        value,
        None,
        len(c.requests),
        len(s.requests),
        "none: PSI is a distance",
        missing=missing,
    )


def _class_share_shift(s: View, c: View, setting: Setting, rule: Rule) -> Measure:
    n = (len(c.requests), len(s.requests))
    test = "chi-square test of class shares"
    if setting.kind == "regression":
        return Measure(None, None, *n, test, missing="a regression has no classes")
    value, p = _share_shift(s, c, setting)
    if value is None:
        return Measure(None, None, *n, test, missing="no labels of both arms to compare")
    return Measure(value, None, *n, test, p)


def _share_shift(s: View, c: View, setting: Setting) -> tuple[float | None, float | None]:
    """The largest difference of a class's share, and the chi-square test's p-value of
    "both arms predict the classes in the same shares"."""
    classes = _all_classes(s, c, setting)
    (sc, sn), (cc, cn) = _shares(s, classes), _shares(c, classes)
    if not sn or not cn:
        return None, None
    value = float(np.max(np.abs(cc / cn - sc / sn)))
    table = np.stack([cc, sc])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return value, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return value, chi2_sf(statistic, table.shape[1] - 1)


def _positive_rate_ratio(s: View, c: View, setting: Setting, rule: Rule) -> Measure:
    n = (len(c.requests), len(s.requests))
    test = "two-proportion z-test (one-sided, of the ratio vs the threshold)"
    if setting.positive is None:
        return Measure(
            None,
            None,
            *n,
            test,
            missing="no positive class (a binary model, or the plan's positive_class)",
        )
    rates = []
    for v in (c, s):
        labels = _label_rows(v)
        rates.append((float(np.sum(labels == setting.positive)), len(labels)))
    (xc, nc), (xs, ns) = rates
    if not nc or not ns:
        return Measure(None, None, *n, test, missing="no labels of both arms to compare")
    pc, ps = xc / nc, xs / ns
    ratio = pc / ps if ps > 0 else (math.inf if pc > 0 else 1.0)
    return Measure(ratio, None, *n, test, _ratio_test(pc, nc, ps, ns, rule))


def _ratio_test(pc: float, nc: int, ps: float, ns: int, rule: Rule) -> float:
    """P-value of "pc op threshold * ps" holding: a one-sided Wald z-test of the difference
    pc - threshold * ps."""
    op, threshold = rule
    diff = pc - threshold * ps
    var = pc * (1 - pc) / nc + threshold**2 * ps * (1 - ps) / ns
    if var <= 0:  # both rates 0 or 1: no spread, the difference says it
        kept = diff <= 0 if op in ("<", "<=") else diff >= 0
        return 1.0 if kept else 0.0
    z = diff / math.sqrt(var)
    return normal_sf(z) if op in ("<", "<=") else normal_sf(-z)


def _agreement(s: View, c: View, setting: Setting, rule: Rule) -> Measure:
    n = (len(c.requests), len(s.requests))
    if setting.pairs is None:
        return Measure(
            None,
            None,
            *n,
            _BINOMIAL,
            missing=f"agreement compares a shadow with the stable model on the same requests; a "
            f"{setting.strategy}'s arms answer different ones",
        )
    stable_rows, candidate_rows = setting.pairs
    keep = np.isin(stable_rows, s.rows) & np.isin(candidate_rows, c.rows)
    a = s.arm.labels[stable_rows[keep]] if s.arm.values is None else s.arm.values[stable_rows[keep]]
    b = (
        c.arm.labels[candidate_rows[keep]]
        if c.arm.values is None
        else c.arm.values[candidate_rows[keep]]
    )
    if not a.size:
        return Measure(None, None, *n, _BINOMIAL, missing="no request answered by both models")
    if s.arm.values is not None:
        same = np.isclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-6, atol=0.0)
    else:
        same = np.asarray([x is not None and x == y for x, y in zip(a, b, strict=True)])
    return Measure(
        float(same.mean()),
        None,
        *n,
        _BINOMIAL,
        _rate_test(int(same.sum()), len(same), rule),
    )


def _human_agreement(s: View, c: View, setting: Setting, rule: Rule) -> Measure:
    figures = []
    for v in (c, s):
        decided = v.arm.decisions[v.rows]
        has = np.asarray([d is not None for d in decided], dtype=bool)
        given = v.arm.labels[v.rows] if v.arm.values is None else v.arm.values[v.rows]
        same = np.asarray(
            [str(x) == str(d) for x, d in zip(given[has], decided[has], strict=True)], dtype=bool
        )
        figures.append((float(same.mean()) if same.size else None, int(same.sum()), len(same)))
    (cv, cx, cn), (sv, _, _) = figures
    return Measure(
        cv,
        sv,
        len(c.requests),
        len(s.requests),
        _BINOMIAL,
        _rate_test(cx, cn, rule),
        missing=None if cn else "no human decision in the feedback on the candidate's answers yet",
        reads_stable=False,
    )


def _engine_metric(
    s: View, c: View, setting: Setting, rule: Rule, name: str, *, drop: bool
) -> Measure:
    """An ML metric of the engine on each arm's labelled records, with its bootstrap draws;
    ``drop``: how much worse the candidate is."""
    n = (len(c.requests), len(s.requests))
    test = f"one-sided bootstrap vs threshold ({_BOOTSTRAP} resamples)"
    found = [_engine_value(v, setting, name, seed) for v, seed in ((c, 1), (s, 0))]
    (cv, cd, _), (sv, sd, _) = found
    if cv is None:
        return Measure(
            None, sv, *n, test, missing="no feedback label on the candidate's answers yet"
        )
    if not drop:
        return Measure(cv, sv, *n, test, _draws_test(cd, rule), reads_stable=False)
    if sv is None:
        return Measure(
            None, None, *n, test, missing="no feedback label on the stable's answers yet"
        )
    sign = 1.0 if name in LOWER_IS_BETTER else -1.0
    k = min(len(cd), len(sd))
    return Measure(
        sign * (cv - sv),
        sv,
        *n,
        test,
        _draws_test(sign * (cd[:k] - sd[:k]), rule),
    )


def _engine_value(
    v: View, setting: Setting, name: str, seed: int
) -> tuple[float | None, np.ndarray, int]:
    """The metric on the group's labelled records with an output, its bootstrap draws and
    how many records."""
    data = _labelled(v, setting)
    if data is None:
        return None, np.zeros(0), 0
    report = slice_metrics(data, metrics=[name], n_boot=_BOOTSTRAP, seed=seed)
    draws = report.overall_draws.get(name, np.zeros(0))
    value = report.overall[name].value
    return (float(value) if np.isfinite(value) else None), draws, data.n


def _labelled(v: View, setting: Setting) -> Predictions | None:
    """The group's records with a feedback label and an output, as the metric engine takes
    predictions (None when there are none)."""
    arm = v.arm
    rows = v.rows
    truth = arm.truth[rows]
    labelled = np.asarray([t is not None for t in truth], dtype=bool)
    if arm.values is not None:
        predicted = arm.values[rows]
        labelled &= np.isfinite(predicted)
        if not labelled.any():
            return None
        return Predictions.from_arrays(
            truth[labelled].astype(np.float64), predicted[labelled], kind="regression"
        )
    labels = arm.labels[rows]
    labelled &= np.asarray([x is not None for x in labels], dtype=bool)
    if not labelled.any():
        return None
    proba = None
    if arm.proba is not None:
        labelled_proba = arm.proba[rows][labelled]
        proba = None if np.isnan(labelled_proba).any() else labelled_proba
    return Predictions.from_arrays(
        np.asarray([str(t) for t in truth[labelled]], dtype=object),
        np.asarray([str(x) for x in labels[labelled]], dtype=object),
        kind="binary",
        proba=proba,
        classes=list(setting.classes) or None,
        positive=setting.positive,
    )


def _draws_test(draws: np.ndarray, rule: Rule) -> float:
    """The share of bootstrap draws on the guard's side: the p-value of "the guard holds"."""
    finite = draws[np.isfinite(draws)]
    if not finite.size:
        return 1.0
    return float(np.mean([holds(float(d), *rule) for d in finite]))


# -- summaries -------------------------------------------------------------------------------


def summary(arm: ArmSample, setting: Setting) -> dict[str, Any]:
    """What one arm's answers look like."""
    v = whole(arm)
    latency = arm.latency_ms
    out: dict[str, Any] = {
        "model": arm.model,
        "version": arm.version,
        "requests": arm.requests,
        "refused": arm.refused,
        "records": arm.rows,
        "errors": int(arm.errors.sum()),
        "error_rate": float(arm.errors.mean()) if arm.requests else None,
        "latency_p50_ms": float(np.quantile(latency, 0.5)) if latency.size else None,
        "latency_p99_ms": float(np.quantile(latency, 0.99)) if latency.size else None,
        "null_rate": float(_null_rows(v).mean()) if arm.rows else None,
    }
    if arm.values is not None:
        finite = arm.values[np.isfinite(arm.values)]
        out["mean_value"] = float(finite.mean()) if finite.size else None
    else:
        labels = _label_rows(v)
        classes = [*setting.classes, *sorted({str(x) for x in labels} - set(setting.classes))]
        out["class_shares"] = {
            k: float(np.sum(labels == k) / len(labels)) if len(labels) else None for k in classes
        }
    out["labelled"] = int(sum(t is not None for t in arm.truth))
    out["decided"] = int(sum(d is not None for d in arm.decisions))
    out["metrics"] = _arm_metrics(v, setting) if out["labelled"] else {}
    if out["decided"]:
        out["human_agreement"] = _human_agreement(v, v, setting, ("<=", 1.0)).candidate
    return out


def _arm_metrics(v: View, setting: Setting) -> dict[str, float | None]:
    """Every metric of the engine the arm's labelled records allow (those that need
    probabilities when every one of them has its own)."""
    data = _labelled(v, setting)
    if data is None:
        return {}
    try:
        report = slice_metrics(data)
    except MlplanError:  # labels the engine cannot take
        return {}
    return {
        n: (float(e.value) if np.isfinite(e.value) else None)
        for n, e in report.overall.items()
        if n != "count"
    }


def shift(stable: ArmSample, candidate: ArmSample, setting: Setting) -> dict[str, Any]:
    """How the candidate's answers differ from the stable's."""
    s, c = whole(stable), whole(candidate)
    value, _ = _psi_of(s, c, setting)
    out: dict[str, Any] = {"prediction_psi": value}
    if setting.kind != "regression":
        out["class_share_shift"], out["class_share_p_value"] = _share_shift(s, c, setting)
    if setting.pairs is not None:
        agreed = _agreement(s, c, setting, ("<=", 1.0))
        out["agreement"] = agreed.candidate
        out["paired"] = len(setting.pairs[0])
    return out
