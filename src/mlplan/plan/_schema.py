"""The plan's schema: one pydantic model with a place for every item of the lifecycle.

Every model forbids unknown keys, so a typo is an error that names the nearest valid key
(see :mod:`mlplan.plan._load`). Optional sections default to "not stated" (``None``) rather
than to an empty value, so the checklist can tell "the plan says none" from "the plan is silent".
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlplan.core import Expression as _Expression
from mlplan.core import expression_names, parse_delimiter, parse_expression

__all__ = [
    "NAME_PATTERN",
    "ApprovalSpec",
    "Baselines",
    "CanaryStep",
    "Compute",
    "DatasetSpec",
    "DeploymentSpec",
    "Direction",
    "Discovery",
    "EvaluationSpec",
    "FeatureEntry",
    "Gates",
    "Guard",
    "HumanLevelPerformanceSpec",
    "LabelRate",
    "Labeling",
    "Labels",
    "Literature",
    "LoggingPolicy",
    "MaxGap",
    "MetricTarget",
    "Metrics",
    "Modeling",
    "MonitorRule",
    "MonitoringSpec",
    "NoRegression",
    "Objectives",
    "OlderSystem",
    "Period",
    "PipelineLabels",
    "PipelineSpec",
    "PipelineSplit",
    "Plan",
    "ProjectSpec",
    "Risk",
    "RolloutSpec",
    "Scenario",
    "Security",
    "SliceFloor",
    "SliceSpec",
    "SmokeRequest",
    "Stakeholder",
    "Strategy",
    "Task",
    "WebhookSpec",
    "parse_threshold",
    "recall_floor",
]

Task = Literal["regression", "binary", "multiclass", "image_classification", "sequence"]
Scenario = Literal["new", "automate", "assist", "replace"]
Strategy = Literal["in-house", "outsourced", "crowdsourced"]
Direction = Literal["maximize", "minimize"]
Comparison = Literal["<", "<=", ">", ">="]

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
"""Names of projects, datasets, slices, gates: a letter, then letters, digits, _ . - (check with
``fullmatch``: ``$`` alone also matches before a final newline, and ``"evil\\n"`` would pass)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


def _check_duration(value: str) -> str:
    if not re.fullmatch(r"\d+(s|m|h|d)", value):
        raise ValueError(f"duration {value!r} must be a number and a unit: s, m, h or d")
    return value


def _check_name(value: str, what: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must start with a letter and hold only letters, digits, "
            "'_', '.' or '-'"
        )
    return value


# -- project and scoping -------------------------------------------------------------------------


class Stakeholder(_Section):
    """A person or team with a stake in the project, and the role they play."""

    name: str
    role: str = Field(description="e.g. business_owner, product_owner, ml_lead, legal")


class ProjectSpec(_Section):
    """Who owns the project and what problem it solves."""

    name: str
    key: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{6,64}$",
        description="Stable id in a shared store; keep it when renaming the project.",
    )
    problem: str | None = Field(None, description="The problem statement, in a few sentences.")
    owner: str | None = None
    stakeholders: list[Stakeholder] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "project name")

    @property
    def store_key(self) -> str:
        """How the store knows this project: its key, else (plans without one) its name."""
        return self.key or f"name:{self.name}"


class MetricTarget(_Section):
    """A metric with the direction that is better and, optionally, the value to reach."""

    name: str
    direction: Direction = "maximize"
    target: float | None = None
    description: str | None = None


class Metrics(_Section):
    """The three kinds of metric the project is judged by."""

    primary: str | None = Field(None, description="Name of the ML metric that decides.")
    ml: list[MetricTarget] = Field(default_factory=list)
    software: list[MetricTarget] = Field(default_factory=list)
    business: list[MetricTarget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _primary_is_listed(self) -> Metrics:
        names = [m.name for m in self.ml]
        if self.primary is not None and names and self.primary not in names:
            raise ValueError(
                f"primary metric {self.primary!r} is not among the ml metrics; "
                f"known: {', '.join(names)}"
            )
        return self

    @property
    def primary_metric(self) -> MetricTarget | None:
        """The primary ML metric: the one named ``primary``, else the first listed."""
        for metric in self.ml:
            if metric.name == self.primary:
                return metric
        return self.ml[0] if self.ml else None


# -- data and labels -----------------------------------------------------------------------------


class Period(_Section):
    """When the data was collected."""

    start: dt.date
    end: dt.date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"collection period ends ({self.end}) before it starts ({self.start})")
        return self


class Labeling(_Section):
    """How this dataset's labels are made."""

    strategy: Strategy
    notes: str | None = None


class DatasetSpec(_Section):
    """A dataset the project needs, with what is known about it (a datasheet)."""

    path: str | None = Field(None, description="File or folder, relative to the plan.")
    format: Literal["csv", "parquet", "jsonl", "images"] | None = None
    delimiter: str | None = Field(
        None,
        description="A CSV file's field delimiter: one character, or comma, semicolon, tab or "
        "pipe (default: found from the file).",
    )
    decimal: Literal[".", ","] | None = Field(
        None,
        description="A CSV file's decimal mark: '.' or ',' (4,36 is 4.36; default: found "
        "from the file).",
    )
    source: str | None = Field(None, description="Where the data comes from (provenance).")
    owner: str | None = None
    license: str | None = None
    collected: Period | None = None
    description: str | None = None
    id_column: str | None = None
    time_column: str | None = None
    pii_columns: list[str] | None = Field(
        None, description="Columns holding personal data; [] states there are none."
    )
    sensitive_attributes: list[str] | None = Field(
        None, description="Columns to evaluate fairness on; [] states there are none."
    )
    role: Literal["training", "unlabeled", "auxiliary"] = Field(
        "training",
        description="training data holds the target; unlabeled awaits labels; auxiliary neither.",
    )
    labeling: Labeling | None = None

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str | None) -> str | None:
        return None if value is None else parse_delimiter(value)

    @field_validator("id_column", "time_column")
    @classmethod
    def _named_column(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                "names no column (an empty header, such as the row numbers pandas or R write, "
                "cannot be named here); name a column or write null"
            )
        return value

    @model_validator(mode="after")
    def _delimiter_for_csv(self) -> DatasetSpec:
        if self.delimiter is not None and self.format not in (None, "csv"):
            raise ValueError(f"delimiter is for CSV files; format is {self.format}")
        if self.decimal is not None and self.format not in (None, "csv"):
            raise ValueError(f"decimal is for CSV files; format is {self.format}")
        return self


class LabelRate(_Section):
    """What one label costs and how fast labels come, for one labeling strategy."""

    cost_per_label: float = Field(ge=0)
    labels_per_hour: float = Field(gt=0)
    annotators: int = Field(1, ge=1)
    labels_per_item: int = Field(1, ge=1, description="Crowdsourcing: k labels per item.")
    currency: str = "USD"


class Labels(_Section):
    """How labels are made and how good they must be."""

    strategy: Strategy | None = None
    rates: dict[Strategy, LabelRate] = Field(default_factory=dict)
    instructions: str | None = None
    classes: dict[str, str | None] = Field(
        default_factory=dict, description="Class name -> its definition for annotators."
    )
    overlap: float = Field(0.2, ge=0, le=1, description="Share of items labeled twice or more.")
    agreement_metric: Literal["krippendorff_alpha", "fleiss_kappa", "cohen_kappa"] = (
        "krippendorff_alpha"
    )
    scale: Literal["nominal", "ordinal", "interval"] = Field(
        "nominal", description="How labels compare: unordered classes, ordered, or numbers."
    )
    min_agreement: float = Field(0.6, ge=-1, le=1)


# -- slices and baselines ------------------------------------------------------------------------


class SliceSpec(_Section):
    """A subset of the data, defined once and reused by evaluation, rollout and monitoring.

    One of: ``columns`` (one slice per value, or per value combination when several columns are
    given), ``bins`` (numeric edges for one column) or ``where`` (a SQL filter expression).
    """

    name: str
    columns: list[str] | None = None
    column: str | None = Field(None, description="With bins: the numeric column to cut.")
    bins: list[float] | None = None
    where: str | None = Field(None, description='SQL boolean expression, e.g. "age >= 65".')
    min_support: int = Field(30, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "slice name")

    @field_validator("where")
    @classmethod
    def _one_expression(cls, value: str | None) -> str | None:
        if value is not None and (";" in value or "--" in value or "/*" in value):
            raise ValueError(
                f"where {value!r} must be one SQL boolean expression, without ';' or comments"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> SliceSpec:
        kinds = [
            k
            for k, v in (("columns", self.columns), ("bins", self.bins), ("where", self.where))
            if v
        ]
        if len(kinds) != 1:
            raise ValueError(
                f"slice {self.name!r} must define exactly one of 'columns', 'bins' or 'where'; "
                f"got {', '.join(kinds) if kinds else 'none'}"
            )
        if self.bins is not None:
            if self.column is None:
                raise ValueError(f"slice {self.name!r} has 'bins' but no 'column' to cut")
            if sorted(self.bins) != self.bins or len(set(self.bins)) != len(self.bins):
                raise ValueError(f"slice {self.name!r}: bins must be strictly increasing")
        elif self.column is not None:
            raise ValueError(f"slice {self.name!r}: 'column' is only used with 'bins'")
        return self

    @property
    def referenced_columns(self) -> list[str]:
        """Columns this slice reads (for ``where``, none: its expression is checked on data)."""
        if self.columns:
            return list(self.columns)
        return [self.column] if self.column else []


class HumanLevelPerformanceSpec(_Section):
    """Where HLP comes from: measured from labels, or a value taken from elsewhere."""

    source: Literal["labels", "value"] = "labels"
    value: float | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _value_given(self) -> HumanLevelPerformanceSpec:
        if self.source == "value" and self.value is None:
            raise ValueError("hlp.source is 'value' but no hlp.value is given")
        return self


class OlderSystem(_Section):
    """The system the model replaces or assists, whose predictions it must beat."""

    name: str
    description: str | None = None
    predictions: str | None = Field(None, description="File of its predictions, if at hand.")


class Literature(_Section):
    """A published result or open-source system to compare with (reported, not measured here)."""

    title: str
    url: str | None = None
    metric: str
    score: float
    dataset: str | None = None
    note: str | None = None


class Baselines(_Section):
    """What the model is measured against."""

    hlp: HumanLevelPerformanceSpec | None = None
    older_system: OlderSystem | None = None
    literature: list[Literature] | None = Field(
        None, description="References with reported scores; [] with literature_note says none."
    )
    literature_note: str | None = Field(None, description="Why no reference applies, if none.")


class Risk(_Section):
    """A brainstormed way the system might go wrong, tied to the check that would show it."""

    id: str
    description: str
    slice: str | None = None
    metric: str | None = None
    monitor: str | None = None
    threshold: float | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_name(value, "risk id")


# -- deployment, rollout, monitoring -------------------------------------------------------------


class Compute(_Section):
    """The compute budget per serving replica."""

    cpus: float | None = Field(None, gt=0)
    gpus: int = Field(0, ge=0)
    memory_gb: float | None = Field(None, gt=0)
    max_model_mb: float | None = Field(None, gt=0, description="Edge/browser size limit.")


class Objectives(_Section):
    """Latency and throughput objectives."""

    latency_p50_ms: float | None = Field(None, gt=0)
    latency_p99_ms: float | None = Field(None, gt=0)
    qps: float | None = Field(None, gt=0)
    batch_rows_per_second: float | None = Field(None, gt=0)


class LoggingPolicy(_Section):
    """How predictions are logged."""

    predictions: bool = True
    mode: Literal["acked", "async"] = "acked"
    retention_days: int = Field(90, ge=1)
    pii: Literal["redact", "hash"] = "hash"
    segment_mb: float = Field(
        64, gt=0, description="A server's log segment is closed, then compacted, at this size."
    )


class Security(_Section):
    """Authentication and privacy on the serving path."""

    auth: Literal["api_key", "none"] = "api_key"
    unseen_categories: Literal["reject", "allow"] = "reject"
    out_of_range: Literal["reject", "allow", "clip"] = "allow"


class DeploymentSpec(_Section):
    """How the model is served."""

    mode: Literal["realtime", "batch"] = "realtime"
    target: Literal["cloud", "edge", "browser"] = "cloud"
    compute: Compute = Field(default_factory=Compute)
    objectives: Objectives = Field(default_factory=Objectives)
    logging: LoggingPolicy = Field(default_factory=LoggingPolicy)
    security: Security = Field(default_factory=Security)
    schedule: str | None = Field(None, description="Batch: cron expression for scoring runs.")


class Guard(_Section):
    """A condition checked while traffic moves to a candidate; failing it rolls back.

    ``metric`` is measured on the candidate's answers in the step's window (``error_rate``,
    ``latency_p99_ms``, ``null_rate``, one of the plan's metrics once labels arrive, ...) or
    compares them with the stable model's (``prediction_psi``, ``positive_rate_ratio``,
    ``latency_p99_ratio``, ...); the rollout analysis lists them all.

    ``rule`` instead names a rule of the plan's ``monitoring`` section (``NAME``, or
    ``FAMILY.NAME`` where two families hold one of that name): the monitor measures the
    rule's metric on the candidate's records of the step's window, as ``mlplan monitor``
    would, and compares it with the rule's ``op`` and ``threshold``, within the rule's
    ``slice``, below the rule's ``min_samples`` inconclusive. Such a guard takes no
    ``metric``, ``op``, ``threshold``, ``slice`` or ``min_requests`` of its own."""

    rule: str | None = Field(
        None,
        description="A monitoring rule's name (or FAMILY.NAME): the guard is that rule, "
        "measured on the candidate's records of the step's window.",
    )
    metric: str | None = None
    op: Comparison | None = None
    threshold: float | None = None
    slice: str | None = None
    min_requests: int | None = Field(
        None, ge=0, description="Unset: the step's min_requests (the shadow's for a shadow)."
    )

    @model_validator(mode="after")
    def _rule_or_metric(self) -> Guard:
        own = [
            k
            for k in ("metric", "op", "threshold", "slice", "min_requests")
            if getattr(self, k) is not None
        ]
        if self.rule is not None:
            if own:
                raise ValueError(
                    f"a guard naming rule {self.rule!r} takes the rule's metric, op, threshold, "
                    f"slice and min_samples; remove {', '.join(own)}, or the rule"
                )
            return self
        missing = [k for k in ("metric", "op", "threshold") if getattr(self, k) is None]
        if missing:
            raise ValueError(
                f"a guard needs either rule (a monitoring rule's name) or metric, op and "
                f"threshold; missing: {', '.join(missing)}"
            )
        return self


class CanaryStep(_Section):
    """One step of a canary: a traffic share held for a while."""

    weight: float = Field(gt=0, le=100, description="Percent of traffic on the candidate.")
    duration: str = Field("10m", description="How long to hold, e.g. 30s, 10m, 2h, 1d.")
    min_requests: int = Field(100, ge=0)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _check_duration(value)


class SmokeRequest(_Section):
    """A request a blue-green candidate must answer through the preview route before the
    switch: the records, and what the answers must be (each unset expectation unchecked)."""

    records: list[dict[str, Any]] = Field(min_length=1)
    labels: list[str] | None = Field(None, description="The label expected for each record.")
    min_value: float | None = Field(None, description="Regression: no value below it.")
    max_value: float | None = Field(None, description="Regression: no value above it.")

    @model_validator(mode="after")
    def _one_label_each(self) -> SmokeRequest:
        if self.labels is not None and len(self.labels) != len(self.records):
            raise ValueError(
                f"{len(self.labels)} labels for {len(self.records)} records: give one each"
            )
        return self


class RolloutSpec(_Section):
    """How a new model reaches traffic."""

    strategy: Literal["shadow", "canary", "blue_green"] | None = Field(
        None, description="Unset: derived from the scenario (see Plan.rollout_strategy)."
    )
    shadow_min_requests: int = Field(1000, ge=0)
    steps: list[CanaryStep] = Field(
        default_factory=lambda: [
            CanaryStep(weight=5),
            CanaryStep(weight=25),
            CanaryStep(weight=50),
            CanaryStep(weight=100),
        ]
    )
    guards: list[Guard] = Field(default_factory=list)
    auto_rollback: bool = True
    interval: str = Field(
        "1m", description="How often the controller analyses the step under way, e.g. 30s."
    )
    failure_limit: int = Field(
        1, ge=1, description="Failing analyses in a step before the rollout is rolled back."
    )
    sticky: str | None = Field(
        None,
        description=(
            "What keeps a caller on one model during a canary: header:NAME or field:NAME "
            "(a record's field); unset: each request is routed at random."
        ),
    )
    shadow_share: float = Field(
        100, gt=0, le=100, description="Percent of requests mirrored to a shadow candidate."
    )
    approval_above: float | None = Field(
        None,
        ge=0,
        lt=100,
        description=(
            "Promotion past this share of traffic needs an approval of gate promote naming "
            "the candidate (mlplan approve promote --subject MODEL); unset: none needed."
        ),
    )
    smoke: list[SmokeRequest] = Field(
        default_factory=list,
        description="Blue-green: requests sent to green through the preview route first.",
    )
    rollback_window: str = Field(
        "30m", description="Blue-green: how long blue stays loaded after the switch."
    )

    @field_validator("interval", "rollback_window")
    @classmethod
    def _durations(cls, value: str) -> str:
        return _check_duration(value)

    @field_validator("sticky")
    @classmethod
    def _sticky(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(header|field):[A-Za-z0-9_.-]+", value):
            raise ValueError(
                f"sticky {value!r} must be header:NAME (an HTTP header) or field:NAME (a "
                "record's field), e.g. header:X-User-Id"
            )
        return value

    @field_validator("steps")
    @classmethod
    def _ramp(cls, steps: list[CanaryStep]) -> list[CanaryStep]:
        weights = [s.weight for s in steps]
        if weights != sorted(weights):
            raise ValueError(f"canary step weights must not decrease; got {weights}")
        if weights and weights[-1] != 100:
            raise ValueError(f"the last canary step must take all traffic (100); got {weights}")
        return steps


class MonitorRule(_Section):
    """A monitored quantity and the threshold that fires an alert."""

    name: str
    metric: str
    op: Comparison = ">"
    threshold: float
    window: str = "1h"
    slice: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    min_samples: int = Field(
        30,
        ge=1,
        description="Fewest samples (requests for software and business, records for input "
        "and output, labelled records for ml, answered records for estimated) the window "
        "must rest on; below that the rule is not evaluated, never fired.",
    )

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return _check_duration(value)


class WebhookSpec(_Section):
    """Where ``mlplan monitor check`` posts the alerts it opens and resolves."""

    url: str = Field(description="http(s) URL receiving the alerts' JSON payload.")
    secret_env: str | None = Field(
        None,
        description="Environment variable holding a secret sent in ``secret_header`` (never "
        "logged nor stored).",
    )
    secret_header: str = Field("Authorization", description="The header carrying the secret.")
    allow_private: bool = Field(
        False,
        description="Allow loopback, link-local, private-range and cloud metadata addresses "
        "(refused by default).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"webhook url {value!r} must start with http:// or https://")
        return value


class MonitoringSpec(_Section):
    """What is watched once the model is live."""

    software: list[MonitorRule] = Field(default_factory=list)
    input: list[MonitorRule] = Field(default_factory=list)
    output: list[MonitorRule] = Field(default_factory=list)
    ml: list[MonitorRule] = Field(default_factory=list)
    business: list[MonitorRule] = Field(default_factory=list)
    estimated: list[MonitorRule] = Field(
        default_factory=list,
        description="Rules on a classifier's ML metrics estimated before labels: metric "
        "roc_auc (the estimate), roc_auc.low or roc_auc.high (its interval's bounds), "
        "roc_auc.realised (once labels arrive); min_samples counts the window's rows.",
    )
    webhook: WebhookSpec | None = Field(
        None, description="Post fired and resolved alerts to this webhook (mlplan monitor check)."
    )
    drift_method: Literal["auto", "psi", "ks", "chi2", "jensenshannon"] = Field(
        "auto",
        description="How each feature's drift from the training reference is measured. auto: "
        "by type and rows (numbers: Kolmogorov-Smirnov up to 10,000 rows, PSI on the training "
        "deciles above; categories: chi-square up to 1,000 rows while every expected count is "
        "5 or more, else Jensen-Shannon distance); psi, ks, chi2 or jensenshannon: that one "
        "wherever it applies (ks: categories use chi-square).",
    )
    drift_threshold: float = Field(
        0.2,
        gt=0,
        description="Drifted above this PSI (auto's and psi's). Set with drift_method ks or "
        "chi2: the p-value below which a feature has drifted (else 0.05); with jensenshannon: "
        "the distance (else 0.1).",
    )

    def rule(self, name: str, *, where: str = "rule") -> tuple[str, MonitorRule]:
        """The family and rule ``name`` names: a rule's name, or ``FAMILY.NAME``.

        Raises
        ------
        ValueError
            No such rule (the message lists those that exist), or a name two families
            hold (``where`` names the field in the message).

        Examples
        --------
        >>> spec = MonitoringSpec(input=[{"name": "age-gaps", "metric": "features.age.missing",
        ...                               "threshold": 0.2}])
        >>> spec.rule("age-gaps")[0], spec.rule("input.age-gaps")[1].metric
        ('input', 'features.age.missing')
        """
        families = ("software", "input", "output", "ml", "business", "estimated")
        every = [(f, r) for f in families for r in getattr(self, f)]
        found = [(f, r) for f, r in every if r.name == name or f"{f}.{r.name}" == name]
        if not found:
            known = ", ".join(f"{f}.{r.name}" for f, r in every) or "none"
            raise ValueError(
                f"{where} {name!r} is not a rule of the monitoring section; rules: {known}"
            )
        if len(found) > 1:
            raise ValueError(
                f"{where} {name!r} names a rule of "
                + " and ".join(f for f, _ in found)
                + "; give it as "
                + " or ".join(f"{f}.{name}" for f, _ in found)
            )
        return found[0]

    @field_validator("software", "input", "output", "ml", "business", "estimated")
    @classmethod
    def _unique_names(cls, rules: list[MonitorRule]) -> list[MonitorRule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:  # an alert is kept per rule name: two would share it
                raise ValueError(f"rule name {rule.name!r} appears twice; give each its own")
            seen.add(rule.name)
        return rules


class Modeling(_Section):
    """How models are built: families to try, features, seeds and search budgets."""

    # The names of mlplan.modeling.FAMILIES, checked where the plan loads (file and line);
    # modeling sits above the plan, so tests/modeling/test_families.py keeps the two equal.
    families: list[Literal["linear", "logistic", "gbt", "cnn", "rnn"]] | None = Field(
        None, description="Families to train; unset: the task's defaults."
    )
    features: list[str] | None = Field(
        None, description="Input columns; unset: all but the target, ids, times and PII."
    )
    exclude: list[str] = Field(default_factory=list, description="Columns never used as input.")
    min_frequency: int = Field(
        10,
        ge=1,
        description="Tables: a category seen in fewer training rows shares one '(infrequent)' "
        "input with the other rare ones of its column; 1 keeps every category apart.",
    )
    allowed_features: list[str] = Field(
        default_factory=list,
        description="Features that may nearly determine the target: known when predicting, so "
        "the screen before training does not refuse them as derived from it.",
    )
    seed: int = 0
    tune_trials: int = Field(0, ge=0)
    hyperparameters: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Family -> its hyperparameters."
    )
    backbone: str | None = Field(
        None,
        description="Images: the pretrained CNN — a local .pt2 (torch.export) or .onnx file, "
        "or torchvision:NAME where torchvision and its weights are installed.",
    )
    fine_tune: Literal["head", "last"] = Field(
        "last",
        description="Images: train only a new head on the frozen backbone, or the head and "
        "the backbone's last block.",
    )
    image_size: list[int] | None = Field(
        None, min_length=2, max_length=2, description="Images: [height, width] fed to the CNN."
    )
    image_mean: list[float] | None = Field(
        None, description="Images: per-channel mean (pixels scaled to 0–1) the backbone expects."
    )
    image_std: list[float] | None = Field(
        None, description="Images: per-channel standard deviation the backbone expects."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="cnn and rnn: where torch trains and fine-tunes — auto: the GPU when "
        "torch sees one, else the CPU; cpu; cuda: the GPU, or the CPU with a note when there "
        "is none. The package is the same either way (exported from the CPU); the tabular "
        "families (linear, logistic, gbt) always train on the CPU and ignore it.",
    )
    window: int | None = Field(None, ge=1, description="Sequences: window length.")
    horizon: int | None = Field(
        None,
        ge=0,
        description="Sequences: steps between the window's end and the predicted row "
        "(forecasting: >= 1, default 1; classification: default 0).",
    )


# -- derived features ----------------------------------------------------------------------------

FEATURE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class FeatureEntry(_Section):
    """One derived feature: an expression over input columns and earlier features (the
    language: :mod:`mlplan.core._expressions`), written as the string alone or with a
    description. Parsed when the plan loads; its columns are checked against the data."""

    expr: str = Field(description="e.g. 'log1p(income)', 'clip(zscore(age), -3, 3)'.")
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"expr": data} if isinstance(data, str) else data

    @field_validator("expr")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_expression(value)  # a PlanError is a ValueError: it gets the file and line
        return value

    @property
    def expression(self) -> _Expression:
        """The parsed expression."""
        return parse_expression(self.expr)


class SliceFloor(_Section):
    """Every value of a slice must reach ``min`` on ``metric``."""

    slice: str
    metric: str
    min: float


class MaxGap(_Section):
    """The best and worst value of a slice may differ by at most ``max_gap`` on ``metric``."""

    slice: str
    metric: str
    max_gap: float = Field(ge=0)


class NoRegression(_Section):
    """The candidate may not be worse than the older or production model on any slice."""

    metric: str
    against: Literal["older_system", "production"] = "production"
    tolerance: float = Field(0.0, ge=0)


class Gates(_Section):
    """Pass/fail checks before a model may ship (beyond the metric targets)."""

    slice_floors: list[SliceFloor] = Field(default_factory=list)
    max_gaps: list[MaxGap] = Field(default_factory=list)
    no_regression: list[NoRegression] = Field(default_factory=list)


class Discovery(_Section):
    """Slice discovery: conjunctions of feature conditions whose error is above overall."""

    max_conditions: int = Field(3, ge=1, le=3)
    min_support: int = Field(30, ge=1)
    min_effect: float = Field(
        0.3, ge=0, description="Smallest effect size (Cohen's d of the error) worth reporting."
    )
    features: list[str] | None = Field(
        None, description="Columns to search; unset: the model's inputs and the slice columns."
    )
    max_seconds: float | None = Field(
        60.0,
        ge=0,
        description="Time limit of the search: single conditions are always tested, a deeper "
        "level only while time is left (a level the limit interrupts is dropped whole); the "
        "report says what was cut. null: no limit.",
    )


_RECALL_FLOOR = re.compile(r"^recall\s*>=\s*(\S+)$")


def parse_threshold(value: float | str, *, name: str = "threshold") -> float | str:
    """A binary decision threshold as ``evaluation.threshold`` and ``--threshold`` take it:
    a number in (0, 1); ``f1`` or ``youden``, the threshold of best F1 or Youden's J on the
    validation rows; or ``recall>=X`` (X in (0, 1]), the highest threshold whose recall on
    the validation rows is at least X, so precision is as high as that floor allows.

    Returns the number, or the criterion (a floor written ``recall>=X``); ``name`` is what
    the messages call the value.

    Raises
    ------
    ValueError
        Anything else, with what is accepted.

    Examples
    --------
    >>> parse_threshold("0.3"), parse_threshold("f1"), parse_threshold("recall >= .6")
    (0.3, 'f1', 'recall>=0.6')
    """
    accepted = "a number in (0, 1), f1, youden or recall>=X with X in (0, 1]"
    if isinstance(value, str):
        text = value.strip()
        if text in {"f1", "youden"}:
            return text
        floor = _RECALL_FLOOR.fullmatch(text)
        if floor is not None:
            try:
                share = float(floor.group(1))
            except ValueError:
                share = float("nan")
            if not 0 < share <= 1:
                raise ValueError(
                    f"the recall floor of {name} {value!r} must be in (0, 1]; e.g. recall>=0.6"
                )
            return f"recall>={share:g}"
        try:
            value = float(text)
        except ValueError:
            hint = " (quote it for the shell: 'recall>=0.6')" if text == "recall" else ""
            raise ValueError(f"{name} must be {accepted}; got {value!r}{hint}") from None
    if isinstance(value, bool) or not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1); got {value}")
    return float(value)


def recall_floor(criterion: float | str) -> float | None:
    """The recall a ``recall>=X`` threshold criterion asks for (None: another criterion)."""
    if not isinstance(criterion, str):
        return None
    floor = _RECALL_FLOOR.fullmatch(criterion.strip())
    return float(floor.group(1)) if floor is not None else None


class EvaluationSpec(_Section):
    """How models are evaluated: intervals, significance, rare classes, the threshold."""

    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples for every interval.")
    confidence: float = Field(0.95, gt=0, lt=1)
    alpha: float = Field(
        0.05, gt=0, lt=1, description="False discovery rate (Benjamini-Hochberg) over slices."
    )
    rare_class_share: float = Field(
        0.05, ge=0, le=1, description="Classes below this share of the rows are rare."
    )
    threshold: float | str = Field(
        "f1",
        description="Binary: the decision threshold, or how to choose it on the validation "
        "split: f1 (max F1), youden (Youden's J) or recall>=X (the highest threshold whose "
        "recall is at least X).",
    )
    discovery: Discovery = Field(default_factory=Discovery)

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float | str) -> float | str:
        return parse_threshold(value)


class ApprovalSpec(_Section):
    """Which role signs off which gate."""

    gate: str
    role: str
    required: bool = True

    @field_validator("gate")
    @classmethod
    def _gate(cls, value: str) -> str:
        return _check_name(value, "gate")


# -- the pipeline --------------------------------------------------------------------------------

_CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@once"}


class PipelineSplit(_Section):
    """How ``mlplan run`` splits the dataset it trains on (the options of ``mlplan data
    split``)."""

    test: float = Field(0.2, ge=0, lt=1, description="Share of rows for the test split.")
    valid: float = Field(0.1, ge=0, lt=1, description="Share of rows for the validation split.")
    stratify: str | None = Field(
        None, description="Column to stratify by; unset: the target, for a classification task."
    )
    group: str | None = Field(None, description="Column whose values never cross splits.")
    time: str | None = Field(None, description="Column to split by time (newest rows: test).")
    seed: int | None = Field(None, description="Seed of the split; unset: modeling.seed.")


class PipelineLabels(_Section):
    """A labeling round the pipeline starts for each new version of the data it trains on
    (as ``mlplan labels export``); the labels that come back are measured (agreement, HLP)
    on a later run, before the models are compared with them."""

    n: int = Field(ge=1, description="Items in the round's batch.")
    overlap: float | None = Field(
        None, ge=0, le=1, description="Share labeled twice; unset: labels.overlap."
    )
    seed: int | None = Field(None, description="Seed of the choice; unset: modeling.seed.")


class PipelineSpec(_Section):
    """``mlplan run``: the plan's stages as one cached pipeline, its schedule and retries."""

    dataset: str | None = Field(
        None, description="The dataset the models train on; unset: the plan's first."
    )
    split: PipelineSplit = Field(default_factory=PipelineSplit)
    labels: PipelineLabels | None = Field(
        None, description="A labeling round per new data version; unset: none."
    )
    deployment: str = Field(
        "production", description="The deployment a model that passes its gates rolls out to."
    )
    schedule: str | None = Field(
        None,
        description="When a scheduler runs the pipeline: a cron expression (five fields) or "
        "@hourly, @daily, @weekly, @monthly; unset: by hand only.",
    )
    retries: int = Field(1, ge=0, le=10, description="A scheduled step's retries.")
    retry_delay: str = Field("5m", description="Wait before a retry (90s, 5m, 1h).")
    strategy: Literal["shadow", "canary", "blue_green"] | None = Field(
        None,
        description="How a candidate the pipeline trained rolls out (never straight into "
        "production); unset: rollout.strategy, else the scenario's.",
    )
    retrain_on: list[str] = Field(
        default_factory=list,
        description="Monitoring rules whose alert starts the pipeline on the newest data "
        "(mlplan run --if-alerted).",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None or value in _CRON_PRESETS:
            return value
        fields = value.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[0-9*/,\-A-Za-z?]+", f) for f in fields):
            raise ValueError(
                f"schedule {value!r} must be a cron expression of five fields (minute hour "
                f"day month weekday, e.g. '0 3 * * *') or one of {', '.join(sorted(_CRON_PRESETS))}"
            )
        return value

    @field_validator("retry_delay")
    @classmethod
    def _delay(cls, value: str) -> str:
        return _check_duration(value)


# -- the plan ------------------------------------------------------------------------------------

_DEFAULT_ROLLOUT: dict[str, Literal["shadow", "canary", "blue_green"]] = {
    "new": "canary",
    "automate": "shadow",
    "assist": "shadow",
    "replace": "shadow",
}


class Plan(_Section):
    """The whole plan of an ML project, as written in ``mlplan.yaml``.

    Examples
    --------
    >>> plan = Plan.model_validate({"project": {"name": "churn"}, "task": "binary",
    ...                             "target": "churned"})
    >>> plan.rollout_strategy
    'canary'
    """

    version: Literal[1] = 1
    project: ProjectSpec
    scenario: Scenario | None = Field(
        None, description="new | automate | assist | replace; sets the default rollout."
    )
    task: Task
    target: str | None = None
    positive_class: str | None = Field(
        None, description="Binary tasks: the class that counts as positive (FP/FN, recall)."
    )
    datasets: dict[Annotated[str, Field(pattern=NAME_PATTERN.pattern)], DatasetSpec] = Field(
        default_factory=dict
    )
    labels: Labels = Field(default_factory=Labels)
    metrics: Metrics = Field(default_factory=Metrics)
    slices: list[SliceSpec] = Field(default_factory=list)
    features: dict[Annotated[str, Field(pattern=FEATURE_NAME)], FeatureEntry] = Field(
        default_factory=dict,
        description="Derived features, in order: name -> expression over the input columns "
        "and earlier features, computed alike in training (DuckDB) and in the package's graph.",
    )
    baselines: Baselines = Field(default_factory=Baselines)
    risks: list[Risk] | None = None
    modeling: Modeling = Field(default_factory=Modeling)
    gates: Gates = Field(default_factory=Gates)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    approvals: list[ApprovalSpec] = Field(default_factory=list)
    pipeline: PipelineSpec = Field(default_factory=PipelineSpec)

    @field_validator("features")
    @classmethod
    def _features_in_order(cls, features: dict[str, FeatureEntry]) -> dict[str, FeatureEntry]:
        names = list(features)
        for i, (name, entry) in enumerate(features.items()):
            later = sorted(set(expression_names(entry.expression)) & set(names[i:]))
            if name in later:
                raise ValueError(
                    f"feature {name!r} ({entry.expr!r}) reads its own name; give the feature a "
                    "name of its own (not a column's)"
                )
            if later:
                raise ValueError(
                    f"feature {name!r} ({entry.expr!r}) uses {', '.join(map(repr, later))}, "
                    "defined at or below it; a feature may use only the features above it"
                )
        return features

    @model_validator(mode="after")
    def _cross_references(self) -> Plan:
        if self.task != "image_classification" and self.target is None:
            raise ValueError(f"task {self.task!r} needs a 'target' column")
        if self.pipeline.dataset is not None and self.pipeline.dataset not in self.datasets:
            raise ValueError(
                f"pipeline.dataset names {self.pipeline.dataset!r}, which is not under "
                f"datasets; datasets: {', '.join(self.datasets) or 'none'}"
            )
        names = [s.name for s in self.slices]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"slice names must be unique; repeated: {', '.join(duplicates)}")
        for risk in self.risks or []:
            if risk.slice is not None and risk.slice not in names:
                raise ValueError(
                    f"risk {risk.id!r} names slice {risk.slice!r}, which is not defined; "
                    f"slices: {', '.join(names) or 'none'}"
                )
        monitors = [
            m.name
            for rules in (
                self.monitoring.software,
                self.monitoring.input,
                self.monitoring.output,
                self.monitoring.ml,
                self.monitoring.business,
                self.monitoring.estimated,
            )
            for m in rules
        ]
        for risk in self.risks or []:
            if risk.monitor is not None and risk.monitor not in monitors:
                raise ValueError(
                    f"risk {risk.id!r} names monitor {risk.monitor!r}, which is not defined; "
                    f"monitors: {', '.join(monitors) or 'none'}"
                )
        for i, guard in enumerate(self.rollout.guards):
            if guard.rule is not None:
                self.monitoring.rule(guard.rule, where=f"rollout.guards[{i}].rule")
        for i, rule in enumerate(self.pipeline.retrain_on):
            self.monitoring.rule(rule, where=f"pipeline.retrain_on[{i}]")
        named_slices = [
            *((f"rollout.guards[{i}]", g.slice) for i, g in enumerate(self.rollout.guards)),
            *((f"gates.slice_floors[{i}]", g.slice) for i, g in enumerate(self.gates.slice_floors)),
            *((f"gates.max_gaps[{i}]", g.slice) for i, g in enumerate(self.gates.max_gaps)),
        ]
        for where, slice_name in named_slices:
            if slice_name is not None and slice_name not in names:
                raise ValueError(
                    f"{where} names slice {slice_name!r}, which is not defined; "
                    f"slices: {', '.join(names) or 'none'}"
                )
        gates = [a.gate for a in self.approvals]
        if len(set(gates)) != len(gates):
            raise ValueError("each gate may appear once in approvals")
        if self.rollout.approval_above is not None and "promote" not in gates:
            raise ValueError(
                f"rollout.approval_above is {self.rollout.approval_above:g}, but approvals has "
                "no gate 'promote' to sign it; add one, e.g. - {gate: promote, role: "
                "product_owner}"
            )
        return self

    @property
    def rollout_strategy(self) -> Literal["shadow", "canary", "blue_green"]:
        """The rollout strategy: the plan's choice, else the scenario's default."""
        return self.rollout.strategy or _DEFAULT_ROLLOUT[self.scenario or "new"]

    @property
    def slice_names(self) -> list[str]:
        """Names of the plan's slices, in plan order."""
        return [s.name for s in self.slices]

    def approval_for(self, gate: str) -> ApprovalSpec | None:
        """The approval rule for ``gate``, if the plan has one."""
        return next((a for a in self.approvals if a.gate == gate), None)
