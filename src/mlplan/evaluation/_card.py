"""The model card: Markdown with the Hugging Face model-card YAML header (``model-index``
holds the evaluated metrics), and the same card as HTML, both generated from the plan and
the store."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML

from mlplan.modeling import latest_comparison
from mlplan.workspace import Workspace

__all__ = ["model_card"]

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


def _header(ws: Workspace, subject: Any, info: Any, report: dict[str, Any]) -> str:

    plan = ws.plan
    spec = plan.datasets.get(info.name)
    task_type, task_name = _TASK_TYPES[plan.task]
    if plan.task == "sequence" and report["kind"] != "regression":
        task_type, task_name = "time-series-classification", "Sequence classification"
    metrics = [
        {"type": name, "value": round(float(m["value"]), 6), "name": name}
        for name, m in report["overall"].items()
        if name != "count" and m.get("value") is not None
    ]
    license_text = spec.license if spec and spec.license else None
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


def model_card(ws: Workspace, subject: Any, info: Any, report: dict[str, Any]) -> tuple[str, str]:
    """The card of ``subject`` (a model, or predictions from a file) as Markdown with the
    YAML header, and as HTML."""
    from markdown_it import MarkdownIt

    plan = ws.plan
    spec = plan.datasets.get(info.name)
    lines: list[str] = [f"# Model card: {subject.name}", ""]
    lines += [
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
            f"- **Trained on:** {model.split} (seed {model.parameters.get('seed')})",
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
    lines += ["", "## Intended use", ""]
    lines.append(plan.project.problem or "_The plan states no problem statement._")
    if plan.scenario:
        lines += [
            "",
            f"Deployment scenario: **{plan.scenario}**; {plan.deployment.mode} "
            f"scoring on {plan.deployment.target}.",
        ]
    lines += ["", "## Data", ""]
    if spec is not None:
        for key, value in (
            ("Dataset", info.ref),
            ("Source", spec.source),
            ("Owner", spec.owner),
            ("License", spec.license),
            (
                "Collected",
                f"{spec.collected.start} to {spec.collected.end or 'now'}"
                if spec.collected
                else None,
            ),
            ("Description", spec.description),
            (
                "Personal data (excluded from inputs, hashed in logs)",
                ", ".join(spec.pii_columns or []) or None,
            ),
            (
                "Sensitive attributes (evaluated as slices)",
                ", ".join(spec.sensitive_attributes or []) or None,
            ),
        ):
            if value:
                lines.append(f"- **{key}:** {value}")
    else:
        lines.append(f"- **Dataset:** {info.ref}")
    lines += [
        "",
        f"## Metrics ({report['part']} split, {report['rows']:,} rows, "
        f"{round(report['confidence'] * 100)}% bootstrap intervals)",
        "",
        "| metric | value | interval |",
        "|---|---:|---|",
    ]
    for name, m in report["overall"].items():
        if name == "count":
            continue
        interval = (
            f"[{_fmt(m.get('low'))}, {_fmt(m.get('high'))}]" if m.get("low") is not None else ""
        )
        lines.append(f"| {name} | {_fmt(m.get('value'))} | {interval} |")
    comparison = latest_comparison(ws)
    if comparison and comparison.get("split") == subject.split:
        lines += [
            "",
            "Compared on the same test rows:",
            "",
            "| system | kind | " + comparison["primary"] + " |",
            "|---|---|---:|",
        ]
        for row in comparison["rows"]:
            metrics: dict[str, Any] = row["metrics"]
            primary = comparison["primary"]
            shown = primary if primary in metrics else next(iter(metrics), primary)
            value = _fmt(metrics.get(shown, {}).get("value"))
            if shown != primary:  # HLP from hard labels, a paper's own metric
                value += f" ({shown})"
            lines.append(f"| {_cell(row['name'])} | {row['kind']} | {value} |")
    lines += ["", "## Slices", ""]
    metric = report["focus_metric"]
    if report["slices"]:
        lines += [f"| slice | value | rows | {metric} | interval |", "|---|---|---:|---:|---|"]
        for s in report["slices"]:
            for g in s["groups"]:
                m = g["metrics"].get(metric, {})
                interval = (
                    f"[{_fmt(m.get('low'))}, {_fmt(m.get('high'))}]"
                    if m.get("low") is not None
                    else ""
                )
                lines.append(
                    f"| {_cell(s['name'])} | {_cell(g['value'])} "
                    f"| {int(g['metrics']['count']['value'])} "
                    f"| {_fmt(m.get('value'))} | {interval} |"
                )
    else:
        lines.append("_The plan defines no slices._")
    lines += ["", "## Limitations", ""]
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
    for g in report["gates"]:
        if g["state"] == "fail":
            limitations.append(f"- Gate **{g['id']}** fails: {g['evidence']}.")
    lines += limitations or ["- No slice, class or gate stood out in this evaluation."]
    lines += ["", "## Risks", ""]
    if report["risks"]:
        lines += ["| risk | check | state | evidence |", "|---|---|---|---|"]
        for r in report["risks"]:
            lines.append(
                f"| {_cell(r['id'])}: {_cell(r['description'])} | {_cell(r.get('check', ''))} "
                f"| {r['state']} | {_cell(r['evidence'])} |"
            )
    else:
        lines.append("_The plan lists no risks._")
    lines += ["", "## Gates and approvals", ""]
    for g in report["gates"]:
        lines.append(f"- {g['id']}: **{g['state']}** — {g['evidence']}")
    if not report["gates"]:
        lines.append("- The plan sets no gates.")
    for a in report.get("approvals", []):
        lines.append(
            f"- Approved for deployment by {a['by']} ({a['role']}) on {a['created_at'][:10]}"
            + (f": {a['note']}" if a.get("note") else "")
        )
    lines += ["", "_Generated by mlplan from the plan and the store._", ""]
    body = "\n".join(lines)
    markdown = _header(ws, subject, info, report) + "\n" + body
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
