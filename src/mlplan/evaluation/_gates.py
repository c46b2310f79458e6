"""The plan's gates (metric targets, per-slice floors, maximum gaps, no regression) and
risks, judged from an evaluation's numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlplan.core import LOWER_IS_BETTER
from mlplan.errors import UsageError
from mlplan.evaluation._discovery import DiscoveredSlice
from mlplan.modeling import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    REGRESSION_METRICS,
    SliceReport,
)
from mlplan.plan import Plan, Risk

__all__ = [
    "THRESHOLD_RISK",
    "check_metric_applies",
    "judge_gates",
    "judge_risks",
    "judge_threshold",
    "top_k_metric",
]

THRESHOLD_RISK = "threshold-no-better-than-constant"
"""The id of the risk every binary evaluation with validation rows checks: decisions at the
threshold no better than a constant answer."""

_EVERY = {
    "binary": BINARY_METRICS,
    "multiclass": MULTICLASS_METRICS,
    "regression": REGRESSION_METRICS,
}


def top_k_metric(name: str) -> tuple[str, int] | None:
    """``precision_at_300`` → ("precision", 300): the ranking metrics computed overall."""
    for base in ("precision", "recall"):
        prefix = f"{base}_at_"
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return base, int(name[len(prefix) :])
    return None


def check_metric_applies(metric: str, kind: str, where: str, *, sliced: bool = True) -> bool:
    """True when mlplan computes ``metric`` for this kind of task; False for a name it does
    not know (reported as unchecked). A metric of another kind of task is an error."""
    if metric in _EVERY[kind] or (not sliced and kind == "binary" and top_k_metric(metric)):
        return True
    for other, names in _EVERY.items():
        if other != kind and metric in names:
            raise UsageError(
                f"{where}: metric {metric!r} does not apply to a {kind} task; "
                f"metrics: {', '.join(_EVERY[kind])}"
            )
    return False


def _meets(metric: str, value: float, target: float) -> bool:
    return value <= target if metric in LOWER_IS_BETTER else value >= target


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4g}"


def judge_gates(
    plan: Plan,
    kind: str,
    overall: Mapping[str, Mapping[str, Any]],
    slices: Mapping[str, SliceReport],
    regressions: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Every gate of the plan as pass, fail or unchecked, with its evidence."""
    return [
        *_target_gates(plan, kind, overall),
        *_floor_gates(plan, kind, slices),
        *_gap_gates(plan, kind, slices),
        *_regression_gates(plan, kind, regressions),
    ]


def _target_gates(
    plan: Plan, kind: str, overall: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``metrics.ml`` targets, judged on the value over every row."""
    gates: list[dict[str, Any]] = []
    for i, target in enumerate(plan.metrics.ml):
        if target.target is None:
            continue
        where = f"metrics.ml[{i}]"
        gate = {
            "id": f"target:{target.name}",
            "kind": "metric_target",
            "description": f"{target.name} {'<=' if target.name in LOWER_IS_BETTER else '>='} "
            f"{target.target:g}",
        }
        if not check_metric_applies(target.name, kind, where, sliced=False):
            evidence = f"mlplan does not compute {target.name!r}; measure it elsewhere"
            gates.append(gate | {"state": "unchecked", "evidence": evidence})
            continue
        value = overall.get(target.name, {}).get("value")
        if value is None:
            gates.append(gate | {"state": "unchecked", "evidence": "no value (no probabilities?)"})
            continue
        low, high = overall[target.name].get("low"), overall[target.name].get("high")
        gates.append(
            gate
            | {
                "state": "pass" if _meets(target.name, value, target.target) else "fail",
                "value": value,
                "evidence": f"{target.name} {_fmt(value)}"
                + (f" [{_fmt(low)}, {_fmt(high)}]" if low is not None else ""),
            }
        )
    return gates


def _floor_gates(plan: Plan, kind: str, slices: Mapping[str, SliceReport]) -> list[dict[str, Any]]:
    """``gates.slice_floors``: every value of a slice with rows enough meets the floor."""
    gates: list[dict[str, Any]] = []
    support = {s.name: s.min_support for s in plan.slices}
    for i, floor in enumerate(plan.gates.slice_floors):
        lower = floor.metric in LOWER_IS_BETTER  # then the floor is a ceiling
        gate = {
            "id": f"floor:{floor.slice}:{floor.metric}",
            "kind": "slice_floor",
            "description": f"every {floor.slice} value has {floor.metric} "
            f"{'<=' if lower else '>='} {floor.min:g}",
        }
        report = slices[floor.slice]
        lacking = _lacking(floor.metric, kind, f"gates.slice_floors[{i}]", report)
        if lacking:
            gates.append(gate | {"state": "unchecked", "evidence": lacking})
            continue
        minimum = support.get(floor.slice, 30)
        below, unchecked, judged = [], [], 0
        for group, values in report.by_group.items():
            value = values[floor.metric].value
            if values["count"].value < minimum or not np.isfinite(value):
                unchecked.append(group)
                continue
            judged += 1
            if not _meets(floor.metric, value, floor.min):
                below.append(f"{group} {_fmt(value)}")
        if below:
            evidence = f"{'above' if lower else 'below'} {floor.min:g}: {'; '.join(below)}"
        elif judged:
            evidence = f"every value judged is within {floor.min:g}"
        else:
            evidence = f"no value of {floor.slice} has {minimum} rows and a defined {floor.metric}"
        if unchecked and judged:
            evidence += (
                f" ({len(unchecked)} value(s) below min_support {minimum} or undefined, not judged)"
            )
        state = "fail" if below else ("pass" if judged else "unchecked")
        gates.append(gate | {"state": state, "evidence": evidence})
    return gates


def _gap_gates(plan: Plan, kind: str, slices: Mapping[str, SliceReport]) -> list[dict[str, Any]]:
    """``gates.max_gaps``: the spread of a metric across the values of a slice."""
    gates: list[dict[str, Any]] = []
    support = {s.name: s.min_support for s in plan.slices}
    for i, gap in enumerate(plan.gates.max_gaps):
        gate = {
            "id": f"gap:{gap.slice}:{gap.metric}",
            "kind": "max_gap",
            "description": f"{gap.metric} differs by at most {gap.max_gap:g} across {gap.slice}",
        }
        report = slices[gap.slice]
        lacking = _lacking(gap.metric, kind, f"gates.max_gaps[{i}]", report)
        if lacking:
            gates.append(gate | {"state": "unchecked", "evidence": lacking})
            continue
        minimum = support.get(gap.slice, 30)
        value = report.difference(gap.metric, min_count=minimum)
        finite = bool(np.isfinite(value))
        gates.append(
            gate
            | {
                "state": "unchecked"
                if not finite
                else ("pass" if value <= gap.max_gap else "fail"),
                "value": value if finite else None,
                "evidence": (
                    f"gap {_fmt(value)} between values with at least {minimum} rows"
                    if finite
                    else f"fewer than two values of {gap.slice} have {minimum} rows"
                ),
            }
        )
    return gates


def _regression_gates(
    plan: Plan, kind: str, regressions: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """``gates.no_regression``: no slice value significantly worse than the other system."""
    gates: list[dict[str, Any]] = []
    for i, rule in enumerate(plan.gates.no_regression):
        check_metric_applies(rule.metric, kind, f"gates.no_regression[{i}]")
        found = regressions.get(f"{rule.against}:{rule.metric}")
        gate = {
            "id": f"no_regression:{rule.against}:{rule.metric}",
            "kind": "no_regression",
            "description": "no slice significantly worse than the "
            f"{rule.against.replace('_', ' ')} on {rule.metric} (tolerance {rule.tolerance:g})",
        }
        if found is None or found.get("rows") is None:
            reason = (found or {}).get("reason", "nothing to compare with")
            gates.append(gate | {"state": "unchecked", "evidence": reason})
            continue
        rows = found["rows"]
        if not any(r["low"] is not None for r in rows):
            evidence = "no bootstrap intervals (bootstrap: 0) to test a regression with"
            gates.append(gate | {"state": "unchecked", "evidence": evidence})
            continue
        worse = [r for r in rows if r["regression"]]
        evidence = (
            "worse on: "
            + "; ".join(f"{r['slice']} {r['value']} ({_fmt(r['difference'])})" for r in worse)
            if worse
            else f"no significant regression on {len(rows)} slice values"
        )
        gates.append(gate | {"state": "fail" if worse else "pass", "evidence": evidence})
    return gates


def _lacking(metric: str, kind: str, where: str, report: SliceReport) -> str | None:
    """Why ``metric`` cannot be judged per slice value (None when it can)."""
    if not check_metric_applies(metric, kind, where):
        return f"mlplan does not compute {metric!r} per slice"
    if metric not in report.metrics:
        return f"{metric} needs class probabilities, which these predictions lack"
    return None


def judge_risks(
    plan: Plan,
    kind: str,
    overall: Mapping[str, Mapping[str, Any]],
    slices: Mapping[str, SliceReport],
    discovered: Sequence[DiscoveredSlice],
) -> list[dict[str, Any]]:
    """Every risk of the plan with its check: passing, failing or unchecked (a monitor that
    only production traffic can run), and the discovered slices that touch it."""
    out = []
    support = {s.name: s.min_support for s in plan.slices}
    for i, risk in enumerate(plan.risks or []):
        entry: dict[str, Any] = {"id": risk.id, "description": risk.description}
        metric = risk.metric
        if metric is not None:
            check_metric_applies(metric, kind, f"risks[{i}]", sliced=risk.slice is not None)
        if risk.slice is not None:
            report = slices[risk.slice]
            if metric is not None and metric not in report.metrics:
                out.append(
                    entry
                    | {
                        "check": f"{metric} across {risk.slice}",
                        "state": "unchecked",
                        "evidence": f"{metric} is not computed per slice for these predictions",
                    }
                )
                continue
            entry |= _slice_risk(risk, report, support.get(risk.slice, 30))
            linked = _linked(plan, risk.slice, discovered)
            if linked:
                entry["discovered"] = linked
        elif metric is not None:
            entry |= _metric_risk(risk, metric, overall)
        elif risk.monitor is None:
            entry |= {
                "check": "none",
                "state": "unchecked",
                "evidence": "the risk names no slice, metric or monitor to check it with",
            }
        else:
            entry |= {
                "check": f"monitor {risk.monitor}",
                "state": "unchecked",
                "evidence": f"watched by the monitor {risk.monitor!r} once the model serves "
                "traffic",
            }
        out.append(entry)
    return out


def _slice_risk(risk: Risk, report: SliceReport, minimum: int) -> dict[str, Any]:
    """A risk on a slice: the gap across its values against the risk's threshold, else
    values significantly below overall."""
    assert risk.slice is not None
    metric = risk.metric or _default_metric(report)
    check = f"{metric} across {risk.slice}"
    if risk.threshold is not None:
        gap = report.difference(metric, min_count=minimum)
        if not np.isfinite(gap):
            evidence = f"fewer than two values of {risk.slice} have {minimum} rows"
            return {"check": check, "state": "unchecked", "evidence": evidence}
        return {
            "check": check,
            "state": "passing" if gap <= risk.threshold else "failing",
            "evidence": f"gap {_fmt(gap)} (limit {risk.threshold:g})",
        }
    if not report.n_boot:
        return {
            "check": check,
            "state": "unchecked",
            "evidence": "no threshold, and no bootstrap intervals (bootstrap: 0) to "
            "test the slice values against overall",
        }
    worse = _significantly_worse(report, metric, minimum)
    return {
        "check": check,
        "state": "failing" if worse else "passing",
        "evidence": (
            f"significantly below overall: {', '.join(worse)}"
            if worse
            else f"no {risk.slice} value is significantly below overall on {metric}"
        ),
    }


def _metric_risk(
    risk: Risk, metric: str, overall: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A risk on a metric over every row, against the risk's threshold."""
    value = overall.get(metric, {}).get("value")
    if value is None or risk.threshold is None:
        return {
            "check": metric,
            "state": "unchecked",
            "evidence": f"{metric} = {_fmt(value)}; the risk gives no threshold"
            if value is not None
            else f"mlplan does not compute {metric!r}",
        }
    return {
        "check": metric,
        "state": "passing" if _meets(metric, value, risk.threshold) else "failing",
        "evidence": f"{metric} {_fmt(value)} (threshold {risk.threshold:g})",
    }


def _linked(plan: Plan, name: str, discovered: Sequence[DiscoveredSlice]) -> list[str]:
    """The discovered slices that use a column of the plan's slice ``name``."""
    spec = next(s for s in plan.slices if s.name == name)
    touched = set(spec.referenced_columns)
    where = spec.where or ""
    return [
        " and ".join(d.conditions)
        for d in discovered
        if set(d.columns) & touched or any(c in where for c in d.columns)
    ]


def _default_metric(report: SliceReport) -> str:
    for name in ("accuracy", "mae"):
        if name in report.metrics:
            return name
    return report.metrics[1]


def _significantly_worse(report: SliceReport, metric: str, minimum: int) -> list[str]:
    overall = report.overall[metric].value
    worse = []
    for group, values in report.by_group.items():
        estimate = values[metric]
        if values["count"].value < minimum or estimate.low is None or estimate.high is None:
            continue
        if (metric in LOWER_IS_BETTER and estimate.low > overall) or (
            metric not in LOWER_IS_BETTER and estimate.high < overall
        ):
            worse.append(group)
    return worse


def judge_threshold(
    threshold: Mapping[str, Any] | None, classes: Sequence[str], positive: str
) -> dict[str, Any] | None:
    """A failing risk when the decisions at the threshold do no better than answering one
    class always, on the validation rows (None: they do better, or there is no threshold or
    no validation rows to judge on). Its evidence is the warning ``evaluate`` prints."""
    versus = (threshold or {}).get("versus_constant")
    if threshold is None or versus is None or not versus["no_better"]:
        return None
    other = next(c for c in classes if c != positive)
    answer = positive if versus["constant"] == "positive" else other
    return {
        "id": THRESHOLD_RISK,
        "description": "the decisions at the threshold do no better than a constant answer",
        "check": "accuracy and recall at the threshold vs a constant answer (validation rows)",
        "state": "failing",
        "evidence": (
            f"the decision threshold {_fmt(threshold['value'])} ({threshold['criterion']}) "
            f"does no better than always answering {answer!r} on the {versus['rows']:,} "
            f"validation rows: accuracy {_fmt(versus['accuracy'])} vs "
            f"{_fmt(versus['constant_accuracy'])}, recall {_fmt(versus['recall'])}, "
            f"{versus['flagged']:.1%} of rows flagged as {positive!r}; choose another "
            "threshold (evaluation.threshold, or --threshold), or check positive_class"
        ),
    }
