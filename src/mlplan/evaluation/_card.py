"""The model card: Markdown with the Hugging Face model-card YAML header (``model-index``
holds the evaluated metrics), and the same card as HTML, generated from the store: the
dataset version and split the model was trained on (not the plan's datasheet of today), its
inputs, its evaluation and the approvals that name it.

``evaluate`` writes the card beside its report as it stands at that evaluation;
:func:`model_card` generates it again on demand from the evidence held now (a newer
evaluation, approvals given or revoked since), which is what ``mlplan models card`` shows.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from mlplan.data import DatasetVersionInfo, SplitInfo, effective_metadata, get_dataset, get_split
from mlplan.errors import NotFoundError
from mlplan.evaluation._input import Subject
from mlplan.modeling import get_model, latest_comparison
from mlplan.workspace import DEPLOY_GATE, Workspace, list_approvals, staged_file

__all__ = ["CardEvidence", "ModelCard", "model_card", "refresh_model_card", "render_card"]


@dataclass(frozen=True)
class CardEvidence:
    """What a card is generated from: the subject, the dataset version and split it learned
    from (a model) or was matched to (predictions from a file), an evaluation report, the
    approvals that name it, and when that evidence was read."""

    subject: Subject
    trained_on: DatasetVersionInfo
    split: SplitInfo
    report: dict[str, Any]
    approvals: list[dict[str, Any]]
    as_of: str
    """What the card stands for: ``"this evaluation"`` or a time."""
    evaluation_run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The references a card was generated from (JSON-ready)."""
        model = self.subject.model
        return {
            "model": self.subject.name,
            "training_run": model.run_id if model else None,
            "package": model.ref if model else None,
            "package_sha256": model.package_sha256 if model else None,
            "dataset": self.trained_on.ref,
            "dataset_sha256": self.trained_on.content_hash,
            "split": self.split.ref,
            "split_sha256": self.split.artifact_sha256,
            "evaluation_run": self.evaluation_run,
            "approvals": [a["id"] for a in self.approvals],
            "as_of": self.as_of,
        }


@dataclass(frozen=True)
class ModelCard:
    """A model card as Markdown (with the YAML header) and HTML, and the evidence it was
    generated from (:meth:`CardEvidence.to_dict`)."""

    model: str
    markdown: str
    html: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"model": self.model, "evidence": self.evidence, "markdown": self.markdown}


def model_card(ws: Workspace, model: str) -> ModelCard:
    """The card of a registered model (a name: its newest package version; or ``name@N``),
    generated now from what the store holds: the training run's dataset version, split and
    inputs, the newest evaluation of that package version, and the deploy approvals that
    name the version and still count.

    Raises
    ------
    ModelNotFoundError
        Listing the registered models.
    NotFoundError
        The model has not been evaluated yet (a card reports an evaluation).
    """
    found = get_model(ws, model)
    stored = ws.latest_report(
        "evaluation",
        where=lambda r: (
            "source" not in r
            and r.get("model") == found.name
            and (r.get("package") or {}).get("sha256") == found.package_sha256
        ),
    )
    if stored is None:
        raise NotFoundError(
            f"{found.ref} has not been evaluated yet, and its card reports an evaluation. "
            f"Run: mlplan evaluate {found.ref}"
        )
    split = get_split(ws, found.split)
    evidence = CardEvidence(
        Subject.of_model(found),
        get_dataset(ws, f"{split.dataset}@{split.version}"),
        split,
        stored.report,
        [a.to_dict() for a in list_approvals(ws, DEPLOY_GATE) if a.subject == found.ref],
        dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        stored.run_id,
    )
    markdown, html = render_card(ws, evidence)
    return ModelCard(model, markdown, html, evidence.to_dict())


def refresh_model_card(ws: Workspace, model: str) -> Path | None:
    """Write the card of ``model`` generated now over the one ``evaluate`` left in the
    project's ``reports/NAME/`` (after an approval is given or revoked, so the file a person
    opens says what the store says); the folder, or None when the model has no card there or
    no evaluation yet. The card stored with the evaluation stays as it was: a snapshot."""
    found = get_model(ws, model)
    folder = ws.root / "reports" / found.name
    if not (folder / "model-card.md").exists():
        return None
    try:
        card = model_card(ws, found.ref)
    except NotFoundError:
        return None
    for name, text in (("model-card.md", card.markdown), ("model-card.html", card.html)):
        with staged_file(folder / name) as tmp:
            tmp.write_text(text)
    return folder


_TASK_TYPES = {
    "binary": ("tabular-classification", "Binary classification"),
    "multiclass": ("tabular-classification", "Multiclass classification"),
    "regression": ("tabular-regression", "Regression"),
    "image_classification": ("image-classification", "Image classification"),
    "sequence": ("time-series-forecasting", "Sequence prediction"),
}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _header(ws: Workspace, evidence: CardEvidence) -> str:
    plan = ws.plan
    subject, info, report = evidence.subject, evidence.trained_on, evidence.report
    task_type, task_name = _TASK_TYPES[plan.task]
    if plan.task == "sequence" and report["kind"] != "regression":
        task_type, task_name = "time-series-classification", "Sequence classification"
    metrics = [
        {"type": name, "value": round(float(m["value"]), 6), "name": name}
        for name, m in report["overall"].items()
        if name != "count" and m.get("value") is not None
    ]
    license_text = _datasheet(ws, info).get("license") or None
    # The header wants a license id; free text (e.g. "internal use only") goes in license_name.
    spdx = license_text is not None and " " not in license_text.strip()
    data: dict[str, Any] = {
        "license": license_text.strip().lower() if spdx and license_text else "other",
        **({"license_name": license_text} if license_text and not spdx else {}),
        "library_name": "onnx",
        "tags": ["mlplan", task_type, subject.family],
        "datasets": [info.ref],
        "metrics": [m["type"] for m in metrics],
        "model-index": [
            {
                "name": subject.name,
                "results": [
                    {
                        "task": {"type": task_type, "name": task_name},
                        "dataset": {
                            "name": info.ref,
                            "type": info.name,
                            "split": report["part"],
                        },
                        "metrics": metrics,
                    }
                ],
            }
        ],
    }
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return f"---\n{buffer.getvalue()}---\n"


def render_card(ws: Workspace, evidence: CardEvidence) -> tuple[str, str]:
    """The card as Markdown with the YAML header, and as HTML, from ``evidence``."""
    from markdown_it import MarkdownIt

    subject, report = evidence.subject, evidence.report
    lines: list[str] = [f"# Model card: {subject.name}", ""]
    lines += _details(ws, subject, report)
    lines += _intended_use(ws)
    lines += _data(ws, evidence)
    lines += _inputs(subject)
    lines += _metrics(ws, subject, report)
    lines += _slices(report)
    lines += _limitations(report)
    lines += _risks(report)
    lines += _gates_and_approvals(report, evidence.approvals, evidence.as_of)
    lines += ["", _footer(evidence), ""]
    body = "\n".join(lines)
    markdown = _header(ws, evidence) + "\n" + body
    rendered = MarkdownIt("commonmark", {"html": False}).enable("table").render(body)
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>Model card: {subject.name}</title><style>body{{font:14px/1.5 system-ui,sans-serif;"
        "max-width:900px;margin:2rem auto;padding:0 1rem}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:3px 7px}</style></head><body>\n"
        + rendered
        + "</body></html>\n"
    )
    return markdown, html


def _footer(evidence: CardEvidence) -> str:
    subject = evidence.subject
    run = f" (run {evidence.evaluation_run[:8]})" if evidence.evaluation_run else ""
    regenerate = (
        f" `mlplan models card {subject.name}` generates it again from what the store holds "
        "when it runs."
        if subject.model is not None
        else ""
    )
    return (
        f"_Generated by mlplan from the store: {evidence.trained_on.ref}, {evidence.split.ref}, "
        f"the evaluation{run} and the approvals as of {evidence.as_of}.{regenerate}_"
    )


def _interval(m: dict[str, Any]) -> str:
    return f"[{_fmt(m.get('low'))}, {_fmt(m.get('high'))}]" if m.get("low") is not None else ""


def _details(ws: Workspace, subject: Subject, report: dict[str, Any]) -> list[str]:
    plan = ws.plan
    lines = [
        "## Model details",
        "",
        f"- **Project:** {plan.project.name}"
        + (f" (owner: {plan.project.owner})" if plan.project.owner else ""),
        f"- **Task:** {plan.task}" + (f", target `{plan.target}`" if plan.target else ""),
    ]
    model = subject.model
    if model is not None:
        lines += [
            f"- **Family:** {model.family}"
            + (" (the quick-and-dirty baseline)" if model.baseline else ""),
            f"- **Training run:** {model.run_id[:8]}, on {model.split} "
            f"(seed {model.parameters.get('seed')})",
            f"- **Package:** ONNX, sha256 `{model.package['model.onnx'][:16]}…`, parity "
            f"{_fmt(model.parity.get('max_abs_diff'))}",
        ]
    else:
        source = subject.source or {}
        lines += [
            f"- **Predictions made elsewhere:** `{source.get('path')}` (sha256 "
            f"`{str(source.get('sha256'))[:16]}…`), on the rows of {subject.split}",
        ]
    if report.get("threshold"):
        t = report["threshold"]
        lines.append(
            f"- **Decision threshold:** {_fmt(t['value'])} ({t['criterion']}"
            + (f", chosen on the {t['chosen_on']} split" if t.get("chosen_on") else "")
            + ")"
        )
    return lines


def _intended_use(ws: Workspace) -> list[str]:
    plan = ws.plan
    lines = ["", "## Intended use", ""]
    lines.append(plan.project.problem or "_The plan states no problem statement._")
    if plan.scenario:
        lines += [
            "",
            f"Deployment scenario: **{plan.scenario}**; {plan.deployment.mode} "
            f"scoring on {plan.deployment.target}.",
        ]
    return lines


def _datasheet(ws: Workspace, info: DatasetVersionInfo) -> dict[str, Any]:
    """The version's datasheet as recorded when it was registered (and amended by ``data
    describe``); the plan fills only what the record leaves empty, and PII columns named
    anywhere stay named."""
    now = effective_metadata(ws, info)
    recorded = {k: v for k, v in info.metadata.items() if v is not None}
    return {k: recorded.get(k, now.get(k)) for k in {*now, *recorded}} | {
        "pii_columns": now.get("pii_columns") or recorded.get("pii_columns")
    }


def _data(ws: Workspace, evidence: CardEvidence) -> list[str]:
    info, split = evidence.trained_on, evidence.split
    learned = "Trained on" if evidence.subject.model is not None else "Matched to"
    sheet = _datasheet(ws, info)
    collected = sheet.get("collected") or {}
    period = f"{collected.get('start')} to {collected.get('end') or 'now'}" if collected else None
    parts = split.counts
    shares = ", ".join(
        f"{name} {parts[name]['rows']:,}" for name in ("train", "valid", "test") if name in parts
    )
    how = {k: v for k, v in split.parameters.items() if k in {"stratify", "group", "time"} and v}
    lines = [
        "",
        "## Data",
        "",
        f"- **{learned}:** {info.ref} (sha256 `{info.content_hash[:16]}…`, {info.rows:,} rows, "
        f"registered {info.created_at:%Y-%m-%d} from `{info.source_path}`)",
        f"- **Split:** {split.ref} ({shares}; seed {split.parameters.get('seed')}"
        + "".join(f", {k} {v}" for k, v in how.items())
        + f"; leakage checks {'pass' if split.passed else 'FAIL'})",
    ]
    for key, value in (
        ("Source", sheet.get("source")),
        ("Owner", sheet.get("owner")),
        ("License", sheet.get("license")),
        ("Collected", period),
        ("Description", sheet.get("description")),
        (
            "Sensitive attributes (evaluated as slices)",
            ", ".join(sheet.get("sensitive_attributes") or []) or None,
        ),
    ):
        if value:
            lines.append(f"- **{key}:** {value}")
    pii = list(sheet.get("pii_columns") or [])
    if pii:
        lines.append(f"- **Personal data:** {', '.join(pii)} — {_pii_handling(ws, evidence, pii)}")
    return lines


def _pii_handling(ws: Workspace, evidence: CardEvidence, pii: list[str]) -> str:
    """What is done with the PII columns, as the model's inputs and the plan's logging say."""
    said = []
    model = evidence.subject.model
    if model is not None:
        features = model.features
        used = {*features.get("numeric", []), *features.get("categorical", [])}
        inputs = sorted(set(pii) & used)
        said.append(
            f"used as model inputs: {', '.join(inputs)}"
            if inputs
            else "left out of the model's inputs"
        )
    logging = ws.plan.deployment.logging
    if not logging.predictions:
        said.append("predictions are not logged")
    elif logging.pii == "redact":
        said.append("redacted in the prediction log (deployment.logging.pii: redact)")
    else:
        said.append(
            "hashed in the prediction log with the log's own key, so equal values stay "
            "joinable without being readable (deployment.logging.pii: hash)"
        )
    return "; ".join(said)


def _inputs(subject: Subject) -> list[str]:
    model = subject.model
    if model is None:
        return []
    features = model.features
    numeric, categorical = features.get("numeric") or [], features.get("categorical") or []
    lines = ["", "## Inputs", ""]
    if numeric or categorical:
        lines += [
            f"- **Numeric:** {', '.join(numeric) or '–'}",
            f"- **Categorical:** {', '.join(categorical) or '–'}",
        ]
    else:
        kind = features.get("kind") or subject.family
        lines.append(f"- **Inputs:** {kind} (see the package's signature.json)")
    for name, why in (features.get("excluded") or {}).items():
        lines.append(f"- Left out: `{name}` — {why}")
    return lines


def _metrics(ws: Workspace, subject: Subject, report: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Metrics ({report['part']} split, {report['rows']:,} rows, "
        f"{round(report['confidence'] * 100)}% bootstrap intervals)",
        "",
        *_labels_at(report),
        "| metric | value | interval |",
        "|---|---:|---|",
    ]
    for name, m in report["overall"].items():
        if name != "count":
            lines.append(f"| {name} | {_fmt(m.get('value'))} | {_interval(m)} |")
    comparison = latest_comparison(ws)
    if comparison is None or comparison.split != subject.split:
        return lines
    primary = comparison.primary
    lines += [
        "",
        "Compared on the same test rows:",
        "",
        "| system | kind | " + primary + " |",
        "|---|---|---:|",
    ]
    for row in comparison.rows:
        metrics: dict[str, Any] = row["metrics"]
        shown = primary if primary in metrics else next(iter(metrics), primary)
        value = _fmt(metrics.get(shown, {}).get("value"))
        if shown != primary:  # HLP from hard labels, a paper's own metric
            value += f" ({shown})"
        lines.append(f"| {_cell(row['name'])} | {row['kind']} | {value} |")
    return lines


def _labels_at(report: dict[str, Any]) -> list[str]:
    """The sentence that says at which threshold the label metrics were decided."""
    threshold = report.get("threshold")
    if not threshold:
        return []
    how = threshold.get("criterion")
    if threshold.get("chosen_on"):
        how = f"{how}, chosen on the {threshold['chosen_on']} split"
    return [
        f"Labels (accuracy, precision, recall, F1 …) at threshold {threshold['value']:.4g} "
        f"({how}).",
        "",
    ]


def _slices(report: dict[str, Any]) -> list[str]:
    lines = ["", "## Slices", ""]
    metric = report["focus_metric"]
    if not report["slices"]:
        return [*lines, "_The plan defines no slices._"]
    lines += [f"| slice | value | rows | {metric} | interval |", "|---|---|---:|---:|---|"]
    for s in report["slices"]:
        for g in s["groups"]:
            m = g["metrics"].get(metric, {})
            lines.append(
                f"| {_cell(s['name'])} | {_cell(g['value'])} "
                f"| {int(g['metrics']['count']['value'])} "
                f"| {_fmt(m.get('value'))} | {_interval(m)} |"
            )
    return lines


def _limitations(report: dict[str, Any]) -> list[str]:
    metric = report["focus_metric"]
    limitations = []
    for f in report["focus"]:
        if f["significant"]:
            limitations.append(
                f"- Weaker on **{f['slice']}: {f['value']}** ({metric} {_fmt(f['score'])} against "
                f"{_fmt(f['reference'])}, {f['reference_kind']}; q = {_fmt(f['q_value'])})."
            )
    for c in report.get("per_class") or []:
        if c["rare"]:
            limitations.append(
                f"- Class **{c['class']}** is rare ({c['support']} rows): recall "
                f"{_fmt(c['recall']['value'])}." + (f" {c['note']}." if c.get("note") else "")
            )
    for d in report["discovery"]["slices"][:5]:
        limitations.append(
            f"- Discovered: errors concentrate where {' and '.join(d['conditions'])} "
            f"({d['count']} rows, error {_fmt(d['error'])} against "
            f"{_fmt(report['discovery']['overall_error'])})."
        )
    cut = report["discovery"].get("cut")
    if cut:
        # The search stopped at evaluation.discovery.max_seconds: a slice it did not reach
        # may be weaker than any listed.
        limitations.append(f"- Slice discovery was cut short: {cut.rstrip('.')}.")
    for g in report["gates"]:
        if g["state"] == "fail":
            limitations.append(f"- Gate **{g['id']}** fails: {g['evidence']}.")
    nothing = ["- No slice, class or gate stood out in this evaluation."]
    return ["", "## Limitations", "", *(limitations or nothing)]


def _risks(report: dict[str, Any]) -> list[str]:
    lines = ["", "## Risks", ""]
    if not report["risks"]:
        return [*lines, "_The plan lists no risks._"]
    lines += ["| risk | check | state | evidence |", "|---|---|---|---|"]
    for r in report["risks"]:
        lines.append(
            f"| {_cell(r['id'])}: {_cell(r['description'])} | {_cell(r.get('check', ''))} "
            f"| {r['state']} | {_cell(r['evidence'])} |"
        )
    return lines


def _gates_and_approvals(
    report: dict[str, Any], approvals: list[dict[str, Any]], as_of: str
) -> list[str]:
    lines = ["", "## Gates and approvals", ""]
    for g in report["gates"]:
        lines.append(f"- {g['id']}: **{g['state']}** — {g['evidence']}")
    if not report["gates"]:
        lines.append("- The plan sets no gates.")
    for a in approvals:
        covers = (
            f" of {a['subject']} despite evaluation {a['evaluation'][:8]} (that one only)"
            if a.get("evaluation")
            else ""
        )
        lines.append(
            f"- Approved for deployment{covers} by {a['by']} ({a['role']}) on "
            f"{a['created_at'][:10]}" + (f": {a['note']}" if a.get("note") else "")
        )
    if not approvals:
        lines.append(f"- No deploy approval names this model (as of {as_of}).")
    return lines
