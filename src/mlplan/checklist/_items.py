"""The lifecycle checklist's items, as in shared/CHECKLIST.md. Their ids are stable: they are
used in ``status --json``, in the providers and in tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ITEMS", "STAGES", "ChecklistItem", "Stage", "item"]

Stage = Literal[
    "Scoping",
    "Data",
    "Labels",
    "Modeling",
    "Error analysis",
    "Deployment",
    "Rollout",
    "Monitoring",
]
STAGES: tuple[Stage, ...] = (
    "Scoping",
    "Data",
    "Labels",
    "Modeling",
    "Error analysis",
    "Deployment",
    "Rollout",
    "Monitoring",
)


@dataclass(frozen=True)
class ChecklistItem:
    """One item: its id, stage, what it is, when it counts as done, and the plan it reads."""

    id: str
    stage: Stage
    title: str
    done_when: str
    plan_keys: tuple[str, ...] = ()
    """The parts of the plan the item reads, as dotted paths from the top (``datasets``,
    ``deployment.objectives``): where a reader goes to change what the item asks for."""


ITEMS: tuple[ChecklistItem, ...] = (
    ChecklistItem(
        "scope.problem",
        "Scoping",
        "Problem statement, owner and stakeholders",
        "the plan names them",
        ("project",),
    ),
    ChecklistItem(
        "scope.scenario",
        "Scoping",
        "Deployment scenario: new product or capability, automate or assist a manual task, or replace a previous ML system",
        "the plan says which; it sets the default rollout",
        ("scenario",),
    ),
    ChecklistItem(
        "scope.metrics",
        "Scoping",
        "ML metrics with targets, software metrics (latency, throughput for the compute), business metrics",
        "the plan has all three kinds",
        ("metrics",),
    ),
    ChecklistItem(
        "scope.literature",
        "Scoping",
        "Literature search for state of the art and open source",
        "the plan lists references with their reported scores, or says none apply",
        ("baselines.literature",),
    ),
    ChecklistItem(
        "scope.risks",
        "Scoping",
        "Ways the system might go wrong, brainstormed",
        "the plan lists risks; each is tied to a slice, metric or monitor",
        ("risks",),
    ),
    ChecklistItem(
        "scope.buy_in",
        "Scoping",
        "Business / product owner buy-in",
        "an approval by the role the plan names is recorded",
        ("project.stakeholders", "approvals"),
    ),
    ChecklistItem(
        "data.datasets",
        "Data",
        "Datasets the project needs",
        "every dataset in the plan is registered with a version",
        ("datasets",),
    ),
    ChecklistItem(
        "data.metadata",
        "Data",
        "Metadata: source, owner, license, collection period, description, PII columns, sensitive attributes",
        "every field filled for every dataset",
        ("datasets",),
    ),
    ChecklistItem(
        "data.profile",
        "Data",
        "Profile of every version (types, missing values, distributions; images: size, brightness)",
        "stored for the versions in use",
        ("datasets",),
    ),
    ChecklistItem(
        "data.lineage",
        "Data",
        "Provenance and lineage",
        "every version in use has a source and a run that made it",
        ("datasets",),
    ),
    ChecklistItem(
        "data.splits",
        "Data",
        "Train / validation / test splits without leakage",
        "a split exists and its leakage checks pass",
        ("datasets",),
    ),
    ChecklistItem(
        "data.privacy",
        "Data",
        "PII identified and handled",
        "PII columns named, and redaction configured for logs and exports",
        ("datasets", "deployment.logging"),
    ),
    ChecklistItem(
        "labels.strategy",
        "Labels",
        "Labeling strategy: in-house, outsourced or crowdsourced, with cost and throughput",
        "chosen in the plan, estimates computed",
        ("labels",),
    ),
    ChecklistItem(
        "labels.instructions",
        "Labels",
        "Labeling instructions and class definitions",
        "written in the plan",
        ("labels",),
    ),
    ChecklistItem(
        "labels.hlp",
        "Labels",
        "Human level performance (HLP)",
        "measured from multiply-labeled items, with a confidence interval",
        ("baselines.hlp", "labels"),
    ),
    ChecklistItem(
        "labels.agreement",
        "Labels",
        "Annotator agreement above the plan's threshold",
        "kappa / alpha computed and above it",
        ("labels",),
    ),
    ChecklistItem(
        "labels.issues",
        "Labels",
        "Label issues found and handled",
        "the relabel queue is empty or triaged",
        ("labels",),
    ),
    ChecklistItem(
        "model.quick_and_dirty",
        "Modeling",
        "Quick-and-dirty implementation",
        "a baseline of the task's default family is trained",
        ("task", "modeling"),
    ),
    ChecklistItem(
        "model.older_system",
        "Modeling",
        "Performance of the older system",
        "its predictions are scored on the same split (not applicable for a new product)",
        ("baselines.older_system",),
    ),
    ChecklistItem(
        "model.families",
        "Modeling",
        "Model families fit for the task (linear / logistic regression, pretrained CNN, RNN, gradient-boosted trees)",
        "at least the task's default families are trained",
        ("modeling",),
    ),
    ChecklistItem(
        "model.compared",
        "Modeling",
        "Comparison with HLP, the older system and the literature",
        "the comparison exists for the current candidate",
        ("baselines", "metrics"),
    ),
    ChecklistItem(
        "model.packaged",
        "Modeling",
        "Packaged for serving, checked for parity",
        "an ONNX package passed parity",
        ("modeling",),
    ),
    ChecklistItem(
        "model.feasibility",
        "Modeling",
        "Compute resources, latency and throughput against the plan",
        "measured, within the plan's budget",
        ("deployment.compute", "deployment.objectives"),
    ),
    ChecklistItem(
        "eval.slices",
        "Error analysis",
        "Performance on subsets of data (e.g. ethnicity, gender)",
        "every plan slice evaluated, with intervals",
        ("slices",),
    ),
    ChecklistItem(
        "eval.error_types",
        "Error analysis",
        "Prevalence of specific errors (FP, FN)",
        "FP/FN rates overall and per slice",
        ("metrics", "slices"),
    ),
    ChecklistItem(
        "eval.rare_classes",
        "Error analysis",
        "Performance on rare classes",
        "per-class metrics for rare classes",
        ("evaluation",),
    ),
    ChecklistItem(
        "eval.gates",
        "Error analysis",
        "Metrics to assess the above on appropriate slices, as gates",
        "the plan's gates evaluated and passing",
        ("gates",),
    ),
    ChecklistItem(
        "eval.regressions",
        "Error analysis",
        "No regression against the older or production model on any slice",
        "checked and passing",
        ("gates",),
    ),
    ChecklistItem(
        "eval.risks",
        "Error analysis",
        "Brainstormed risks checked",
        "every risk's check ran",
        ("risks",),
    ),
    ChecklistItem(
        "eval.model_card",
        "Error analysis",
        "Report and model card",
        "written for the current candidate",
        ("evaluation",),
    ),
    ChecklistItem(
        "deploy.mode",
        "Deployment",
        "Realtime or batch",
        "the chosen mode runs for the current model",
        ("deployment",),
    ),
    ChecklistItem(
        "deploy.target",
        "Deployment",
        "Cloud, edge or browser",
        "the chosen target is built and checked",
        ("deployment",),
    ),
    ChecklistItem(
        "deploy.compute",
        "Deployment",
        "Compute resources (CPU / GPU / memory)",
        "budgeted in the plan and measured",
        ("deployment.compute",),
    ),
    ChecklistItem(
        "deploy.slo",
        "Deployment",
        "Latency and throughput (QPS) objectives",
        "met in a load test",
        ("deployment.objectives",),
    ),
    ChecklistItem(
        "deploy.logging",
        "Deployment",
        "Logging",
        "every prediction logged durably",
        ("deployment.logging",),
    ),
    ChecklistItem(
        "deploy.security",
        "Deployment",
        "Security and privacy",
        "auth on; PII redacted in logs",
        ("deployment.security",),
    ),
    ChecklistItem(
        "deploy.pipeline",
        "Deployment",
        "Pipeline tooling (transform consistency, scheduling, scale-out)",
        "the pipeline runs and is scheduled",
        ("pipeline",),
    ),
    ChecklistItem(
        "rollout.strategy",
        "Rollout",
        "Rollout strategy for the scenario: shadow, canary or blue-green",
        "chosen in the plan",
        ("rollout",),
    ),
    ChecklistItem(
        "rollout.shadow",
        "Rollout",
        "Shadow deployment (assist or replace)",
        "the candidate ran in shadow and was compared",
        ("rollout",),
    ),
    ChecklistItem(
        "rollout.canary",
        "Rollout",
        "Canary deployment, traffic ramped up gradually while monitored",
        "steps ran with guards",
        ("rollout",),
    ),
    ChecklistItem(
        "rollout.blue_green",
        "Rollout",
        "Blue-green deployment",
        "switch and rollback available and tested",
        ("rollout",),
    ),
    ChecklistItem(
        "rollout.signoff",
        "Rollout",
        "Sign-off before full traffic",
        "recorded where the plan requires it",
        ("rollout", "approvals"),
    ),
    ChecklistItem(
        "monitor.software",
        "Monitoring",
        "Software metrics: memory, compute, latency, throughput, server load",
        "collected for the live deployment",
        ("monitoring",),
    ),
    ChecklistItem(
        "monitor.input",
        "Monitoring",
        "Input metrics: e.g. average image brightness, missing values, input volume, drift",
        "collected, with a training reference",
        ("monitoring",),
    ),
    ChecklistItem(
        "monitor.output",
        "Monitoring",
        "Output metrics: e.g. times returning null, times the user redoes a search or switches to typing",
        "collected, events joined to predictions",
        ("monitoring",),
    ),
    ChecklistItem(
        "monitor.ml",
        "Monitoring",
        "ML metrics (accuracy, precision / recall …) from ground truth",
        "computed from feedback labels",
        ("metrics", "monitoring"),
    ),
    ChecklistItem(
        "monitor.business",
        "Monitoring",
        "Business metrics (revenue …)",
        "computed from feedback events",
        ("metrics", "monitoring"),
    ),
    ChecklistItem(
        "monitor.alerts",
        "Monitoring",
        "Alerts on thresholds",
        "rules set, and the firing path tested",
        ("monitoring",),
    ),
)
_BY_ID = {i.id: i for i in ITEMS}


def item(item_id: str) -> ChecklistItem:
    """The item with this id.

    Examples
    --------
    >>> item("data.splits").stage
    'Data'
    """
    try:
        return _BY_ID[item_id]
    except KeyError:
        raise KeyError(f"no checklist item {item_id!r}; known: {', '.join(_BY_ID)}") from None
