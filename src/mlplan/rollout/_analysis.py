"""A rollout's analysis, pure statistics: the candidate's answers in a window against the
stable model's and the plan's guards. No I/O; ``_observe.py`` reads the log into the two
:class:`ArmSample` s this module judges.

The rules
---------
Each guard of ``rollout.guards`` (``metric op threshold``, optionally within a plan slice)
becomes one :class:`Check`:

- **too few requests** — fewer than the minimum (the guard's ``min_requests``, else the
  current canary step's, else ``rollout.shadow_min_requests`` for a shadow; blue-green takes
  the last canary step's, the one at full traffic) in an arm the metric reads: INCONCLUSIVE.
- **missing** — the metric cannot be computed (an unknown name, one that does not apply to
  the task or the strategy, no feedback labels yet): FAIL. A missing metric counts as a
  failure; the reason says why.
- **satisfied** — the candidate's point value satisfies the guard: PASS.
- **violated** — the point value violates it: FAIL when the check's test rejects "the guard
  holds" at alpha 0.05 (one-sided), or when no test applies (a distance such as the PSI, a
  ratio of quantiles: the threshold is the judgement); otherwise INCONCLUSIVE (more requests
  will tell).

With a ``slice``, the metric is measured within each value of the plan's slice (its masks
over the logged input records); a value with too few requests in an arm is not judged, and
the check takes the worst of the values judged (INCONCLUSIVE when none can be).

A guard naming a monitor rule (``rule:``) is measured by the monitor, not here:
``_observe.py`` has :func:`mlplan.monitoring.measure_span` measure the rule's family on the
candidate's answered records of the window and :func:`mlplan.monitoring.rule_outcomes` judge
it as ``mlplan monitor check`` would (:class:`RuleMeasured`); its check has no test — the
rule's point value against its threshold decides, as the monitor's alert does: FAIL when
it fires (in any value of its slice), INCONCLUSIVE below the rule's ``min_samples`` (or in a
shadow, whose candidate answers no one: its records are not the ones a rule reads), FAIL
when the metric has no value (missing), else PASS.

One built-in check always runs: ``requests``, the candidate's requests against the minimum
(PASS, or INCONCLUSIVE; the stable's are counted only where a metric reads them: after a
blue-green switch, or at a canary's last step, the stable model takes none). The analysis is
FAIL when any check fails, else INCONCLUSIVE when any is inconclusive, else PASS: no guards
and enough requests is a pass.

What each metric counts
-----------------------
A *request* is one logged answer; a *record* one row of it. Validation refusals (a 422 whose
error is the validator's summary) are the client's and are not counted at all; a request is
an **error** when its status is 5xx, or a 422 the model gave (it could not score inputs that
validated). ``error_rate`` and ``latency_p99_ms`` (and ``latency_p99_ratio``, candidate /
stable) read requests; every other metric reads the records of answered requests (2xx):
``null_rate`` (a null or NaN label, value or probability), ``prediction_psi`` (the PSI of the
positive class's score for a binary model, of the class shares for a multiclass one, of the
values for a regression, over ten bins cut at the stable model's quantiles),
``class_share_shift`` (the largest absolute difference of a class's share of the predicted
labels), ``positive_rate_ratio`` (the share predicted positive, candidate / stable),
``agreement`` (a shadow: the share of mirrored records both models gave the same label),
``human_agreement`` (assist: the share of records whose label equals the human ``decision``
sent as feedback), and the metric engine's own metrics (``accuracy``, ``f1``, ``roc_auc``,
``mae``, ...: :func:`mlplan.modeling.slice_metrics`, as evaluation measures them) on the
records with a feedback label, with ``<metric>_drop``: how much worse the candidate is than
the stable model (stable − candidate where higher is better, candidate − stable where lower
is, :data:`mlplan.core.LOWER_IS_BETTER`).

The tests: a one-sided exact binomial test for a share against the threshold (error, null,
agreement rates; the p99 as the share of requests above the threshold against 1 %), a
one-sided two-proportion z-test for the positive-rate ratio, a chi-square test of the class
shares, a one-sided bootstrap for the engine's metrics (the share of resamples on the
guard's side), none for a PSI and a latency ratio.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import numpy as np

from mlplan.errors import MlplanError, ParameterError
from mlplan.modeling import PredictionKind
from mlplan.monitoring import RuleOutcome
from mlplan.plan import Guard, MonitorRule
from mlplan.rollout._measures import (
    ArmSample,
    Measure,
    Setting,
    View,
    holds,
    measure_of,
    shift,
    sliced,
    summary,
    whole,
)

__all__ = [
    "ALPHA",
    "VERDICTS",
    "Analysis",
    "ArmSample",
    "Check",
    "RuleMeasured",
    "Verdict",
    "analyse",
    "combine_verdicts",
]

Verdict = Literal["pass", "fail", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)

ALPHA = 0.05
"""The significance level of every test: a violation fails when p < ALPHA."""
RULE_TEST = "monitor rule: the value against the threshold, no test"
"""The ``test`` of a guard naming a monitor rule."""


@dataclass(frozen=True)
class RuleMeasured:
    """A guard naming a monitor rule, as the monitor measured it on the candidate's records
    of the window: the rule's family and the rule, and its outcome per value of its slice
    (:func:`mlplan.monitoring.rule_outcomes`); else why it could not be measured —
    ``missing`` (it fails, as a missing metric does) or ``unjudged`` (inconclusive)."""

    family: str
    rule: MonitorRule
    outcomes: tuple[RuleOutcome, ...] = ()
    missing: str | None = None
    unjudged: str | None = None

    @property
    def name(self) -> str:
        """``FAMILY.NAME``, as its alerts name the rule."""
        return f"{self.family}.{self.rule.name}"


@dataclass(frozen=True)
class Check:
    """One guard (or the built-in ``requests``) judged: the metric, the slice and its value
    that decided (None overall), the guard's ``op`` and ``threshold``, the candidate's value
    and the stable model's (None where the metric has none), the requests of each arm, the
    test and its p-value (None where none applies), the verdict and why. ``groups`` holds a
    sliced check's every value judged."""

    metric: str
    op: str
    threshold: float
    candidate: float | None
    stable: float | None
    n_candidate: int
    n_stable: int
    test: str
    p_value: float | None
    verdict: Verdict
    reason: str
    slice: str | None = None
    group: str | None = None
    groups: tuple[Check, ...] = ()
    rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (a value that is not finite as None)."""
        out = {
            "metric": self.metric,
            "slice": self.slice,
            "group": self.group,
            "op": self.op,
            "threshold": self.threshold,
            "candidate": _finite(self.candidate),
            "stable": _finite(self.stable),
            "n_candidate": self.n_candidate,
            "n_stable": self.n_stable,
            "test": self.test,
            "p_value": _finite(self.p_value),
            "verdict": self.verdict,
            "reason": self.reason,
        }
        if self.slice is not None:
            out["groups"] = [g.to_dict() for g in self.groups]
        if self.rule is not None:
            out["rule"] = self.rule
        return out


@dataclass(frozen=True)
class Analysis:
    """A rollout's analysis over ``[since, until)``: the verdict, the requests of each arm,
    what each arm's answers look like (``arms``: error rate, latencies, null rate, class
    shares or mean value, ML metrics on labelled records), how they differ (``shift``: PSI,
    class-share shift, agreement), and one :class:`Check` per guard after the built-in one."""

    deployment: str
    rollout_id: int
    strategy: str
    state: str
    stable: str
    candidate: str
    since: dt.datetime
    until: dt.datetime
    min_requests: int
    verdict: Verdict
    reason: str
    arms: dict[str, dict[str, Any]]
    shift: dict[str, Any]
    checks: tuple[Check, ...]

    @property
    def requests(self) -> dict[str, int]:
        """Requests counted per arm."""
        return {arm: int(self.arms[arm]["requests"]) for arm in ("stable", "candidate")}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (strict JSON: no NaN), with flat numbers on top for a web metric
        (``pass``: 1 or 0; ``candidate_error_rate``, ``stable_latency_p99_ms``, ...)."""
        flat: dict[str, Any] = {"verdict": self.verdict, "pass": int(self.verdict == "pass")}
        for arm in ("candidate", "stable"):
            for key in ("requests", "error_rate", "latency_p50_ms", "latency_p99_ms", "null_rate"):
                flat[f"{arm}_{key}"] = _finite(self.arms[arm].get(key))
        for key in ("prediction_psi", "class_share_shift", "agreement"):
            flat[key] = _finite(self.shift.get(key))
        return flat | {
            "deployment": self.deployment,
            "rollout": self.rollout_id,
            "strategy": self.strategy,
            "state": self.state,
            "stable_model": self.stable,
            "candidate_model": self.candidate,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "min_requests": self.min_requests,
            "reason": self.reason,
            "requests": self.requests,
            "arms": _clean(self.arms),
            "shift": _clean(self.shift),
            "checks": [c.to_dict() for c in self.checks],
        }


def combine_verdicts(verdicts: Sequence[Verdict]) -> Verdict:
    """The analysis verdict of its checks': fail if any fails, else inconclusive if any is,
    else pass (no checks: pass).

    Examples
    --------
    >>> combine_verdicts(["pass", "inconclusive"]), combine_verdicts(["inconclusive", "fail"])
    ('inconclusive', 'fail')
    """
    if "fail" in verdicts:
        return "fail"
    if "inconclusive" in verdicts:
        return "inconclusive"
    return "pass"


def analyse(
    stable: ArmSample,
    candidate: ArmSample,
    guards: Sequence[Guard],
    *,
    deployment: str,
    rollout_id: int,
    strategy: str,
    state: str,
    since: dt.datetime,
    until: dt.datetime,
    min_requests: int,
    kind: str,
    classes: Sequence[str] = (),
    positive: str | None = None,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    rules: Mapping[int, RuleMeasured] | None = None,
) -> Analysis:
    """Judge ``candidate`` against ``stable`` and ``guards`` (see the module's rules).

    ``min_requests`` is the rollout's minimum (a guard's own overrides it); ``kind`` the
    task (binary, multiclass, regression); ``classes`` the probabilities' columns;
    ``positive`` the positive class of a binary model; ``pairs`` a shadow's records paired
    with the stable's (same request, same record): indices into each arm's records;
    ``rules`` the guards naming a monitor rule, measured, by their index in ``guards`` (one
    not given fails as missing).

    Raises
    ------
    ParameterError
        A ``kind`` other than binary, multiclass or regression.
    """
    if kind not in get_args(PredictionKind):
        raise ParameterError("kind", f"{{param}} {kind!r}: use binary, multiclass or regression")
    setting = Setting(strategy, cast(PredictionKind, kind), tuple(classes), positive, pairs)
    checks = [_requests_check(stable, candidate, min_requests)]
    checks += [
        _check(g, stable, candidate, setting, min_requests)
        if g.rule is None
        else _rule_check(g.rule, (rules or {}).get(i))
        for i, g in enumerate(guards)
    ]
    verdict = combine_verdicts([c.verdict for c in checks])
    deciding = [c for c in checks if c.verdict == verdict and verdict != "pass"]
    reason = (
        deciding[0].reason
        if deciding
        else f"every check passed ({len(checks) - 1} guard{'s' * (len(checks) != 2)})"
    )
    return Analysis(
        deployment,
        rollout_id,
        strategy,
        state,
        stable.model,
        candidate.model,
        since,
        until,
        min_requests,
        verdict,
        reason,
        {"stable": summary(stable, setting), "candidate": summary(candidate, setting)},
        shift(stable, candidate, setting),
        tuple(checks),
    )


# -- checks ----------------------------------------------------------------------------------


def _requests_check(stable: ArmSample, candidate: ArmSample, minimum: int) -> Check:
    """The built-in check: enough of the candidate's requests to judge."""
    short = (
        [f"the candidate has {candidate.requests:,} of the {minimum:,} requests needed"]
        if candidate.requests < minimum
        else []
    )
    return Check(
        "requests",
        ">=",
        float(minimum),
        float(candidate.requests),
        float(stable.requests),
        candidate.requests,
        stable.requests,
        "none: a count",
        None,
        "inconclusive" if short else "pass",
        "too few requests to judge: " + "; ".join(short)
        if short
        else f"{candidate.requests:,} candidate and {stable.requests:,} stable requests",
    )


def _rule_check(name: str, measured: RuleMeasured | None) -> Check:
    """A guard naming a monitor rule, judged from the monitor's outcomes (module's rules)."""
    if measured is None:
        return Check(
            name,
            ">",
            math.nan,
            None,
            None,
            0,
            0,
            RULE_TEST,
            None,
            "fail",
            f"monitor rule {name} was not measured (analyse_rollout measures it): a missing "
            "metric counts as a failure",
            rule=name,
        )
    rule = measured.rule
    label = f"monitor rule {measured.name}"

    def check(verdict: Verdict, reason: str, o: RuleOutcome | None = None) -> Check:
        return Check(
            o.metric if o is not None else rule.metric,
            rule.op,
            rule.threshold,
            o.value if o is not None else None,
            None,
            o.samples if o is not None else 0,
            0,
            RULE_TEST,
            None,
            verdict,
            reason,
            rule.slice,
            None if o is None or rule.slice is None else o.slice,
            rule=measured.name,
        )

    if measured.unjudged is not None or measured.missing is not None:
        why = measured.unjudged or measured.missing
        verdict: Verdict = "inconclusive" if measured.unjudged is not None else "fail"
        tail = "" if verdict == "inconclusive" else "; a missing metric counts as a failure"
        return check(verdict, f"{label}: {why}{tail}")
    judged = []
    for o in measured.outcomes:
        where = "" if rule.slice is None else f" in {o.slice}"
        shown = f"{label}: {o.metric}{where} = {_shown(o.value)}"
        if o.outcome == "fired":
            judged.append(
                check("fail", f"{shown} violates {o.op} {o.threshold:g} (the value decides)", o)
            )
        elif o.outcome == "ok":
            judged.append(check("pass", f"{shown} {o.op} {o.threshold:g}", o))
        elif o.samples < o.min_samples:
            judged.append(
                check(
                    "inconclusive",
                    f"{label}: too few samples{where} to judge {o.metric}: {o.samples:,} of "
                    f"min_samples {o.min_samples:,}",
                    o,
                )
            )
        else:
            judged.append(
                check(
                    "fail",
                    f"{label}: {o.metric}{where} is missing: {o.reason}; a missing metric "
                    "counts as a failure",
                    o,
                )
            )
    if not judged:
        return check("inconclusive", f"{label}: no record in the window to judge")
    # Values with too few samples are not judged, as a sliced guard's are.
    fails = [c for c in judged if c.verdict == "fail"]
    first = (fails or [c for c in judged if c.verdict == "pass"] or judged)[0]
    if rule.slice is None:
        return first
    return _replace_reason(first, judged, first.verdict, first.reason)


@dataclass(frozen=True)
class _Own:
    """A guard with a metric of its own (not a monitor rule's)."""

    metric: str
    op: str
    threshold: float
    slice: str | None
    min_requests: int | None


def _check(
    given: Guard, stable: ArmSample, candidate: ArmSample, setting: Setting, default_min: int
) -> Check:
    """One guard judged, overall or within each value of its slice."""
    assert given.metric is not None and given.op is not None and given.threshold is not None
    guard = _Own(given.metric, given.op, given.threshold, given.slice, given.min_requests)
    minimum = default_min if guard.min_requests is None else guard.min_requests
    measure = measure_of(guard.metric, setting, (guard.op, guard.threshold))
    if guard.slice is None:
        groups: dict[str | None, tuple[View, View]] = {None: (whole(stable), whole(candidate))}
    else:
        groups = dict(sliced(guard.slice, stable, candidate))
        if not groups:
            return _judged(
                guard,
                Measure(
                    None,
                    None,
                    candidate.requests,
                    stable.requests,
                    "none",
                    missing="the slice has no values in the window",
                ),
                minimum,
                None,
                reason=f"slice {guard.slice!r} selects no logged record in the window (its "
                "columns are not among the logged inputs, or are hashed as personal data): a "
                "missing metric counts as a failure",
            )
    judged = []
    for name, (s, c) in groups.items():
        try:
            found = measure(s, c)
        except MlplanError as error:  # the engine refuses a metric for these rows
            found = Measure(
                None, None, len(c.requests), len(s.requests), "none", missing=str(error)
            )
        judged.append(_judged(guard, found, minimum, name))
    if guard.slice is None:
        return judged[0]
    return _worst(guard, judged)


def _judged(
    guard: _Own, m: Measure, minimum: int, group: str | None, *, reason: str | None = None
) -> Check:
    """The rules of the module's docstring, for one group."""
    short = [
        f"{arm} {n:,}"
        for arm, n, read in (
            ("candidate", m.n_candidate, True),
            ("stable", m.n_stable, m.reads_stable),
        )
        if read and n < minimum
    ]
    where = "" if group is None else f" in {group}"
    verdict: Verdict
    if short:
        verdict = "inconclusive"
        why = f"too few requests{where} to judge {guard.metric}: {', '.join(short)} of {minimum:,}"
    elif m.missing is not None:
        verdict = "fail"
        why = (
            reason
            or f"{guard.metric}{where} is missing: {m.missing}; a missing metric counts as a "
            "failure"
        )
    else:
        assert m.candidate is not None
        shown = f"{guard.metric}{where} = {_shown(m.candidate)} (stable {_shown(m.stable)})"
        if holds(m.candidate, guard.op, guard.threshold):
            verdict = "pass"
            why = f"{shown} {guard.op} {guard.threshold:g}"
        elif m.p_value is None:
            verdict = "fail"
            why = f"{shown} violates {guard.op} {guard.threshold:g} ({m.test}: the value decides)"
        elif m.p_value < ALPHA:
            verdict = "fail"
            why = (
                f"{shown} violates {guard.op} {guard.threshold:g}, significantly "
                f"(p = {m.p_value:.3g} < {ALPHA})"
            )
        else:
            verdict = "inconclusive"
            why = (
                f"{shown} violates {guard.op} {guard.threshold:g}, but not significantly "
                f"(p = {m.p_value:.3g} >= {ALPHA}): more requests will tell"
            )
    return Check(
        guard.metric,
        guard.op,
        guard.threshold,
        m.candidate,
        m.stable,
        m.n_candidate,
        m.n_stable,
        m.test,
        m.p_value,
        verdict,
        why,
        guard.slice,
        group,
    )


def _worst(guard: _Own, judged: list[Check]) -> Check:
    """A sliced check: the worst of its values with enough requests (a failing one, else an
    inconclusive one), else the passing value closest to the threshold."""
    enough = [c for c in judged if not c.reason.startswith("too few requests")]
    if not enough:
        first = judged[0]
        return _replace_reason(
            first,
            judged,
            "inconclusive",
            f"too few requests in every value of slice {guard.slice!r} to judge {guard.metric}",
        )
    for verdict in ("fail", "inconclusive"):
        hit = [c for c in enough if c.verdict == verdict]
        if hit:
            return _replace_reason(hit[0], judged, verdict, hit[0].reason)
    decided = min(enough, key=lambda c: abs((c.candidate or 0.0) - guard.threshold))
    return _replace_reason(decided, judged, "pass", decided.reason)


def _replace_reason(base: Check, groups: list[Check], verdict: Verdict, reason: str) -> Check:
    return Check(
        base.metric,
        base.op,
        base.threshold,
        base.candidate,
        base.stable,
        base.n_candidate,
        base.n_stable,
        base.test,
        base.p_value,
        verdict,
        reason,
        base.slice,
        base.group,
        tuple(groups),
        base.rule,
    )


def _shown(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return _finite(value)
