"""``mlplan init``: a complete, commented plan for a task type, optionally pre-filled from data.

The template fills what can be known (defaults for the task, columns found in the data) and
leaves what only people can say (the problem, business metrics, risks, literature) as explicit
``null``/commented examples, so ``mlplan status`` shows them as missing until someone writes them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from mlplan.plan._schema import Task

__all__ = [
    "RARE_POSITIVE_SHARE",
    "ColumnSuggestion",
    "DataSuggestions",
    "ScanChoice",
    "TargetCandidate",
    "render_plan",
]

RARE_POSITIVE_SHARE = 0.10
"""Below this share of positive rows, the template's primary metric is PR AUC (average
precision) with a recall floor: ROC AUC stays high on rare events even when few are caught."""


@dataclass(frozen=True)
class ColumnSuggestion:
    """One column found by a scan of the data."""

    name: str
    type: str
    distinct: int
    missing_ratio: float
    role: Literal["feature", "target", "id", "time", "pii", "sensitive"] = "feature"
    reason: str = ""
    bands: tuple[float, ...] = ()
    """A numeric sensitive attribute's band edges, for its slice (one slice per value of a
    column with many values would leave every group too small to say anything)."""


@dataclass(frozen=True)
class TargetCandidate:
    """A column that could be the target, and why it ranks where it does."""

    name: str
    score: int
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """The reasons as one line."""
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class ScanChoice:
    """What the scan chose for a question only people can settle (the target, the positive
    class), why, and whether it is sure enough to use without asking."""

    value: str
    reason: str
    sure: bool


@dataclass(frozen=True)
class DataSuggestions:
    """What a scan of a data file suggests for the plan.

    ``target_candidates`` are the candidate names, likeliest first; ``ranking`` the same with
    their reasons; ``target`` the scan's choice (the first candidate), ``positive`` the
    binary target's positive class and ``class_shares`` each class's share of the rows.
    """

    dataset: str
    path: str
    format: Literal["csv", "parquet", "jsonl", "images"]
    rows: int
    columns: list[ColumnSuggestion] = field(default_factory=list)
    target_candidates: list[str] = field(default_factory=list)
    task: Task | None = None
    classes: list[str] = field(default_factory=list)
    ranking: list[TargetCandidate] = field(default_factory=list)
    target: ScanChoice | None = None
    class_shares: dict[str, float] = field(default_factory=dict)
    positive: ScanChoice | None = None
    delimiter: str | None = None
    """A CSV file's delimiter, as given or found in it."""
    target_profile: dict[str, Any] | None = None
    """The chosen target's profile (its kind, distinct count, top values), to hold it against
    a task given by hand."""
    decimal: str = "."
    """A CSV file's decimal mark, as found in it."""

    def names(self, role: str) -> list[str]:
        """Columns suggested for ``role``."""
        return [c.name for c in self.columns if c.role == role]


_ML_METRICS: dict[str, list[tuple[str, str, float | None]]] = {
    "binary": [
        ("roc_auc", "maximize", 0.85),
        ("recall", "maximize", None),
        ("precision", "maximize", None),
    ],
    "multiclass": [("macro_f1", "maximize", 0.8), ("accuracy", "maximize", None)],
    "image_classification": [("accuracy", "maximize", 0.9), ("macro_f1", "maximize", None)],
    "regression": [("mae", "minimize", None), ("rmse", "minimize", None)],
    "sequence": [("mae", "minimize", None), ("rmse", "minimize", None)],
}


# A rare positive class: PR AUC first (chance is the share of positives), a recall floor at
# the decision threshold, precision and ROC AUC beside them.
_RARE_POSITIVE_METRICS: list[tuple[str, str, float | None]] = [
    ("pr_auc", "maximize", 0.5),
    ("recall", "maximize", 0.6),
    ("precision", "maximize", None),
    ("roc_auc", "maximize", None),
]


def _positive(classes: list[str]) -> str | None:
    """A conventional positive class name among two classes, if there is one."""
    for name in classes:
        if name.strip().lower() in {"1", "true", "yes", "positive"}:
            return name
    return None


@dataclass(frozen=True)
class _Outcome:
    """What the template knows of the target: the scan's reason for it, the positive class
    and why, and the positive class's share of the rows."""

    target_reason: str | None = None
    positive: str | None = None
    positive_reason: str | None = None
    positive_share: float | None = None

    @classmethod
    def of(
        cls, task: Task, target: str | None, data: DataSuggestions | None, positive: str | None
    ) -> _Outcome:
        """From the scan, when it scanned this target (a given positive class wins)."""
        scanned = data is not None and data.target is not None and data.target.value == target
        if not scanned or data is None:
            return cls(positive=positive)
        given = data.target is None or data.target.reason == "given"
        reason = None if given or data.target is None else data.target.reason
        if task != "binary":
            return cls(reason)
        why = None
        if positive is not None:
            why = "given"
        elif data.positive is not None:
            positive, why = data.positive.value, data.positive.reason
        else:
            positive = _positive(data.classes)
        share = data.class_shares.get(positive) if positive is not None else None
        return cls(reason, positive, why, share)

    @property
    def rare(self) -> bool:
        """The positive class is rare (below ``RARE_POSITIVE_SHARE`` of the rows)."""
        return self.positive_share is not None and self.positive_share < RARE_POSITIVE_SHARE


def _q(value: object) -> str:
    """A YAML scalar or flow sequence (JSON is valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def render_plan(
    name: str,
    *,
    task: Task,
    target: str | None,
    data: DataSuggestions | None = None,
    problem: str | None = None,
    owner: str | None = None,
    positive_class: str | None = None,
) -> str:
    """The text of a complete, commented ``mlplan.yaml``: one block per plan section, a blank
    line between them.

    With a scan of the data (``data``), a binary target's positive class defaults to the
    scan's (the minority); when it is rare (under ``RARE_POSITIVE_SHARE`` of the rows), the
    primary metric is PR AUC with a recall floor at the decision threshold, and the threshold
    is the highest that meets the floor on the validation split (``recall>=0.6``).

    Examples
    --------
    >>> from mlplan.plan import parse_plan
    >>> parse_plan(render_plan("churn", task="binary", target="churned")).target
    'churned'
    """
    outcome = _Outcome.of(task, target, data, positive_class)
    metrics = _RARE_POSITIVE_METRICS if outcome.rare else _ML_METRICS[task]
    sections = [
        _header(),
        _scoping(name, task=task, target=target, outcome=outcome, problem=problem, owner=owner),
        _datasets(data),
        _labels(data),
        _metrics(metrics, outcome),
        _slices(data),
        _baselines(),
        _risks(),
        _modeling(),
        _gates(),
        _evaluation(outcome, metrics),
        _deployment(),
        _rollout(),
        _monitoring(metrics, _target_spread(data)),
        _approvals(),
        _pipeline(),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _header() -> list[str]:
    return [
        "# mlplan.yaml — the plan of this ML project. Every stage reads it; `mlplan status`",
        '# checks it item by item against the evidence in the store. `null` means "not stated',
        '# yet": status shows such items as missing until someone fills them in.',
        "version: 1",
    ]


def _scoping(
    name: str,
    *,
    task: Task,
    target: str | None,
    outcome: _Outcome,
    problem: str | None,
    owner: str | None,
) -> list[str]:
    out = [
        "# ── Scoping ─────────────────────────────────────────────────────────────────────────",
        "project:",
        f"  name: {_q(name)}",
        # Quoted: an unquoted hex key such as 2e1040... or 8083700754 would read as a number.
        f"  key: {_q(uuid.uuid4().hex[:12])}  # this project's id in a shared store: keep it "
        "when renaming",
        f"  problem: {_q(problem)}  # what is solved, for whom, and why ML"
        if problem
        else "  problem: null  # TODO: what is solved, for whom, and why ML",
        f"  owner: {_q(owner)}"
        if owner
        else "  owner: null  # TODO: the accountable person or team",
        "  stakeholders: []  # e.g. [{name: Dana Lee, role: business_owner}]",
        "",
        "# new | automate | assist | replace — sets the default rollout (new: canary, else shadow)",
        "scenario: null  # TODO: which one is this project?",
        "# regression | binary | multiclass | image_classification | sequence",
        f"task: {task}",
        (
            f"target: {_q(target)}"
            + (f"  # chosen by the scan: {outcome.target_reason}" if outcome.target_reason else "")
        )
        if target
        else "target: null  # image folders: the class is the folder",
    ]
    if task == "binary":
        positive, why = outcome.positive, outcome.positive_reason
        if positive and why and why != "given":
            out.append(f"# positive class from the scan: {why}; check")
        out.append(
            f"positive_class: {_q(positive)}  # the class FP/FN and recall refer to"
            if positive
            else "positive_class: null  # TODO: the class FP/FN and recall refer to"
        )
    return out


def _datasets(data: DataSuggestions | None) -> list[str]:
    out = [
        "# ── Data ────────────────────────────────────────────────────────────────────────────",
        "# Every dataset the project needs, with its datasheet. `mlplan data add NAME` registers a",
        "# version; fields given here are the defaults for that dataset's metadata.",
        "datasets:",
    ]
    if data is not None:
        return out + _dataset_block(data)
    return [
        *out,
        "  main:",
        "    path: data/main.csv  # TODO: the file or image folder, relative to this plan",
        '    source: null  # TODO: where it comes from (provenance), e.g. "CRM export 2026-11"',
        "    owner: null",
        "    license: null",
        "    collected: null  # {start: 2025-01-01, end: 2025-12-31}",
        "    description: null",
        "    id_column: null",
        "    time_column: null",
        "    pii_columns: null  # columns with personal data; [] says there are none",
        "    sensitive_attributes: null  # e.g. [gender, ethnicity, age]; [] says none",
        "    labeling: {strategy: in-house}  # in-house | outsourced | crowdsourced",
    ]


def _labels(data: DataSuggestions | None) -> list[str]:
    out = [
        "# ── Labels ──────────────────────────────────────────────────────────────────────────",
        "labels:",
        "  strategy: in-house  # in-house | outsourced | crowdsourced",
        "  rates:  # per strategy, so `mlplan labels export` can compare cost and time",
        "    in-house: {cost_per_label: 0.50, labels_per_hour: 120, annotators: 3}",
        "    outsourced: {cost_per_label: 0.20, labels_per_hour: 400, annotators: 10}",
        "    crowdsourced: {cost_per_label: 0.05, labels_per_hour: 2000, annotators: 50, "
        "labels_per_item: 3}",
        "  instructions: null  # TODO: what annotators are told",
    ]
    classes = data.classes if data is not None else []
    if classes:
        out.append("  classes:  # class -> its definition for annotators")
        out += [f"    {_q(cls)}: null  # TODO: define" for cls in classes]
    else:
        out.append(
            '  classes: {}  # class -> its definition, e.g. {churned: "cancelled within 30 days"}'
        )
    return [
        *out,
        "  overlap: 0.2  # share of items labeled by two or more annotators",
        "  agreement_metric: krippendorff_alpha  # krippendorff_alpha | fleiss_kappa | cohen_kappa",
        "  min_agreement: 0.6",
    ]


def _metrics(metrics: list[tuple[str, str, float | None]], outcome: _Outcome) -> list[str]:
    out = [
        "# ── Metrics ─────────────────────────────────────────────────────────────────────────",
        "metrics:",
    ]
    if outcome.rare:
        assert outcome.positive_share is not None
        share = outcome.positive_share
        out += [
            f"  # Positives ({_q(outcome.positive)}) are rare ({share:.1%} of the rows): ROC AUC "
            "stays high on rare",
            "  # events even when few are caught, so the primary metric is PR AUC (average "
            "precision;",
            f"  # chance: {share:.2g}), with a recall floor at the decision threshold. Set "
            "both to what",
            "  # the use needs.",
        ]
    return [
        *out,
        f"  primary: {metrics[0][0]}",
        "  ml:",
        *(
            f"    - {{name: {metric}, direction: {direction}, target: "
            f"{'null' if goal is None else goal}}}"
            + ("  # at the decision threshold" if outcome.rare and metric == "recall" else "")
            for metric, direction, goal in metrics
        ),
        "  software:",
        "    - {name: latency_p99_ms, direction: minimize, target: 50}",
        "    - {name: qps, direction: maximize, target: 100}",
        "  business: []  # TODO, e.g. [{name: retained_revenue, direction: maximize, target: 1e6}]",
    ]


def _slices(data: DataSuggestions | None) -> list[str]:
    out = [
        "# Slices: subsets evaluated, rolled out and monitored separately. One of: columns (one",
        "# slice per value or value combination), column + bins (numeric edges), where (SQL).",
    ]
    sensitive = data.names("sensitive") if data is not None else []
    if not sensitive:
        return [
            *out,
            "slices: []  # e.g. [{name: gender, columns: [gender]}, "
            "{name: age, column: age, bins: [0, 30, 60, 120]}]",
        ]
    out.append("slices:")
    banded = {c.name: c.bands for c in data.columns if c.bands} if data is not None else {}
    for column in sensitive:
        if column in banded:
            edges = ", ".join(f"{edge:g}" for edge in banded[column])
            out.append(
                f"  - {{name: {column}, column: {column}, bins: [{edges}]}}"
                "  # bands; values outside them, and missing ones, get groups of their own"
            )
        else:
            out.append(f"  - {{name: {column}, columns: [{column}]}}")
    categorical = [c for c in sensitive if c not in banded]
    if len(categorical) > 1:
        out.append(f"  - {{name: {'_x_'.join(categorical[:2])}, columns: {_q(categorical[:2])}}}")
    return out


def _baselines() -> list[str]:
    return [
        "# ── Baselines ───────────────────────────────────────────────────────────────────────",
        "baselines:",
        "  hlp: {source: labels}  # measured by `mlplan labels hlp`; or "
        "{source: value, value: 0.9}",
        "  older_system: null  # {name: rules-v2, predictions: data/rules_predictions.csv}",
        "  literature: null  # [{title: ..., url: ..., metric: roc_auc, score: 0.87}]; or [] and",
        "  literature_note: null  # a note saying why none applies",
    ]


def _risks() -> list[str]:
    return [
        "# Ways the system might go wrong; tie each to a slice, a metric or a monitor.",
        "risks: null  # e.g. [{id: worse-for-women, description: ..., slice: gender, "
        "metric: recall, threshold: 0.05}]",
    ]


def _modeling() -> list[str]:
    return [
        "# ── Modeling ────────────────────────────────────────────────────────────────────────",
        "modeling:",
        "  families: null  # null: the task's defaults; or [logistic, gbt] (linear, cnn, rnn)",
        "  features: null  # null: every column but the target, ids, times and PII columns",
        "  exclude: []  # columns never used as input",
        "  # Categories seen in fewer training rows share one '(infrequent)' input, inside the",
        "  # package too: a weight learned from under 10 rows is mostly noise. 1: keep all apart.",
        "  min_frequency: 10",
        "  allowed_features: []  # kept though one alone explains >= 0.98 of the target "
        "(else refused)",
        "  seed: 0",
        "  tune_trials: 0  # > 0: a seeded search over the validation split",
        "  device: auto  # cnn, rnn: the GPU when torch sees one; cpu or cuda to choose",
        "# Derived features, defined once: DuckDB computes them to train on, each package's",
        "# graph from the raw columns; mean, std, min, max, quantiles and vocabulary read the",
        "# training rows only. `mlplan features check` computes them both ways and compares.",
        "# features:",
        "#   log_income: log1p(income)",
        "#   age_z: clip(zscore(age), -3, 3)",
        "#   plan_score: \"map(plan, {'pro': 1, 'basic': 0.5}, default=0)\"",
    ]


def _gates() -> list[str]:
    return [
        "# Pass/fail checks before a model ships, beyond the metric targets above.",
        "gates:",
        "  slice_floors: []  # e.g. [{slice: gender, metric: recall, min: 0.6}]",
        "  max_gaps: []  # e.g. [{slice: ethnicity, metric: recall, max_gap: 0.05}]",
        "  no_regression: []  # e.g. [{metric: recall, against: production, tolerance: 0.01}]",
    ]


def _evaluation(outcome: _Outcome, metrics: list[tuple[str, str, float | None]]) -> list[str]:
    floor = next((goal for m, _, goal in metrics if m == "recall" and outcome.rare), None)
    threshold = (
        [
            "  # Positives are rare: the threshold of best F1 catches few of them and misses the",
            "  # recall target above, so the threshold is the highest one whose recall on the",
            "  # validation split reaches that target (precision as high as the floor allows).",
            f"  threshold: recall>={floor:g}  # or a number, f1, youden",
        ]
        if floor is not None
        else [
            "  threshold: f1  # binary: a number, or f1 / youden / recall>=X to choose it on the "
            "validation split",
        ]
    )
    return [
        "# How mlplan evaluate measures a model; a failed gate blocks deployment unless approved.",
        "evaluation:",
        "  bootstrap: 200  # resamples behind every interval",
        "  confidence: 0.95",
        "  alpha: 0.05  # false discovery rate over the slices tested",
        "  rare_class_share: 0.05  # classes below this share of the rows are rare",
        *threshold,
        "  # slices with more errors than the rest, searched for: up to 3 conditions each; "
        "deeper levels",
        "  # start only while time is left (the report says what was cut)",
        "  discovery: {max_conditions: 3, min_support: 30, max_seconds: 60}",
    ]


def _deployment() -> list[str]:
    return [
        "# ── Deployment ──────────────────────────────────────────────────────────────────────",
        "deployment:",
        "  mode: realtime  # realtime | batch",
        "  target: cloud  # cloud | edge | browser",
        "  compute: {cpus: 2, gpus: 0, memory_gb: 2}",
        "  objectives: {latency_p50_ms: 10, latency_p99_ms: 50, qps: 100}",
        "  logging: {predictions: true, mode: acked, retention_days: 90, pii: hash}",
        "  security: {auth: api_key, unseen_categories: reject, out_of_range: allow}",
    ]


def _rollout() -> list[str]:
    return [
        "# ── Rollout ─────────────────────────────────────────────────────────────────────────",
        "rollout:",
        "  strategy: null  # shadow | canary | blue_green; null: from the scenario",
        "  steps:",
        *(
            f"    - {{weight: {weight}, duration: {duration}, min_requests: 100}}"
            for weight, duration in ((5, "30m"), (25, "1h"), (50, "1h"), (100, "1d"))
        ),
        "  guards: []  # e.g. [{metric: error_rate, op: '<', threshold: 0.01}]",
        "  # a guard may be a monitoring rule below, {rule: NAME}, measured on the candidate",
        "  interval: 1m  # how often the controller analyses a step",
        "  failure_limit: 1  # failing analyses in a step before it rolls back",
        "  sticky: null  # header:X-User-Id or field:customer_id keeps a caller on one model",
        "  shadow_share: 100  # percent of requests mirrored to a shadow",
        "  approval_above: null  # promotion past this share needs: mlplan approve promote",
    ]


def _target_spread(data: DataSuggestions | None) -> float | None:
    """The scanned target's standard deviation, when it is a number."""
    profile = data.target_profile if data is not None else None
    std = (profile or {}).get("std")
    return float(std) if isinstance(std, int | float) and std > 0 else None


def _monitoring(metrics: list[tuple[str, str, float | None]], spread: float | None) -> list[str]:
    primary, direction, goal = metrics[0]
    maximize = direction == "maximize"
    alarm = 0.8 if maximize else 1.0
    why = ""
    if maximize and goal is not None and goal < 0.8:
        alarm = round(goal * 0.8, 2)  # below the target, as 0.8 is below 0.85
    if not maximize and primary in {"mae", "rmse"} and spread is not None:
        # An error in the target's units: at its spread, the model does no better than
        # always answering the mean.
        alarm = float(f"{spread:.3g}")
        why = "  # the target's standard deviation: no better than always the mean"
    return [
        "# ── Monitoring ──────────────────────────────────────────────────────────────────────",
        "monitoring:",
        "  software:",
        "    - {name: p99-latency, metric: latency_p99_ms, op: '>', threshold: 50, window: 5m}",
        "  input:",
        "    - {name: input-drift, metric: drift.drifted, op: '>', threshold: 0, window: 1d}"
        "  # features drifted",
        "  output:",
        "    - {name: null-outputs, metric: null_rate, op: '>', threshold: 0.01, window: 1h}",
        f"  ml: [{{name: primary-metric, metric: {primary}, op: '{'<' if maximize else '>'}', "
        f"threshold: {alarm}, window: 7d}}]{why}",
        "  business: []",
    ]


def _approvals() -> list[str]:
    return [
        "# ── Sign-offs ───────────────────────────────────────────────────────────────────────",
        "# Which role signs off which gate: `mlplan approve GATE --role ROLE --by NAME`.",
        "approvals:",
        "  - {gate: buy_in, role: business_owner}",
        "  - {gate: deploy, role: ml_lead}",
        "  - {gate: promote, role: product_owner}  # past rollout.approval_above",
    ]


def _pipeline() -> list[str]:
    return [
        "# ── Pipeline ────────────────────────────────────────────────────────────────────────",
        "# `mlplan run` takes the plan from its data to a rollout, reusing every step whose",
        "# inputs are unchanged; a scheduler runs it on `schedule`.",
        "pipeline:",
        "  dataset: null  # the dataset the models train on; null: the first under datasets",
        "  split: {test: 0.2, valid: 0.1, stratify: null, group: null, time: null, seed: null}",
        "  # stratify null: by the target (classification); seed null: modeling.seed",
        "  labels: null  # e.g. {n: 500, overlap: 0.2}: a labeling round per new data version",
        "  deployment: production  # where a model that passes its gates rolls out",
        "  schedule: null  # cron, e.g. '0 3 * * *' (nightly), or @daily; null: by hand only",
        "  retries: 1  # a scheduled step's retries",
        "  retry_delay: 5m",
    ]


def _dataset_block(data: DataSuggestions) -> list[str]:
    out: list[str] = []
    add = out.append
    pii = data.names("pii")
    sensitive = data.names("sensitive")
    # A real id (customer_id) names items better than an export's row number.
    ids = sorted(
        (n for n in data.names("id") if n.strip()),  # an empty header cannot be named
        key=lambda n: any(c.name == n and c.reason.startswith("row number") for c in data.columns),
    )
    times = data.names("time")
    add(f"  {data.dataset}:")
    add(f"    path: {_q(data.path)}")
    add(f"    format: {data.format}")
    if data.delimiter not in (None, ","):
        add(f"    delimiter: {_q(data.delimiter)}  # between the fields")
    if data.decimal != ".":
        add(f"    decimal: {_q(data.decimal)}  # 4,36 is 4.36")
    add(f"    # scanned: {data.rows:,} rows, {len(data.columns)} columns")
    add("    source: null  # TODO: where it comes from (provenance)")
    add("    owner: null")
    add("    license: null")
    add("    collected: null  # {start: 2025-01-01, end: 2025-12-31}")
    add("    description: null")
    add(f"    id_column: {_q(ids[0]) if ids else 'null'}")
    add(f"    time_column: {_q(times[0]) if times else 'null'}")
    by_reason: dict[str, list[str]] = {}
    for c in data.columns:
        if c.role == "pii":
            by_reason.setdefault(c.reason, []).append(c.name)
    reasons = "; ".join(f"{', '.join(cols)}: {why}" for why, cols in by_reason.items())
    # An empty list would state "there are none": only a person can say that.
    if pii:
        add(f"    pii_columns: {_q(pii)}  # found by the scan ({reasons}); check for more")
    else:
        add("    pii_columns: null  # TODO: the scan found none; list them, or [] once checked")
    if sensitive:
        why = "; ".join(f"{c.name}: {c.reason}" for c in data.columns if c.role == "sensitive")
        add(f"    sensitive_attributes: {_q(sensitive)}  # found by the scan ({why}); check")
    else:
        add(
            "    sensitive_attributes: null  # TODO: the scan found none by name or values; "
            "list them, or [] if none"
        )
    add("    labeling: {strategy: in-house}")
    if data.columns:
        add("    # columns (type, distinct values, missing):")
        for c in data.columns:
            note = f" <- {c.role}" if c.role != "feature" else ""
            add(
                f"    #   {c.name}: {c.type}, {c.distinct:,} distinct, "
                f"{c.missing_ratio:.1%} missing{note}"
            )
    if data.ranking[1:]:
        add("    # other target candidates:")
        out += [f"    #   {c.name} ({c.reason})" for c in data.ranking[1:6]]
    elif len(data.target_candidates) > 1:
        add(f"    # other target candidates: {', '.join(data.target_candidates[1:])}")
    return out
