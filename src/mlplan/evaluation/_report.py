"""The evaluation report: one self-contained HTML file (plots inlined as SVG, no script, no
request when opened) rendered from the evaluation's JSON."""

from __future__ import annotations

import io
import math
from importlib.resources import files
from typing import Any

from mlplan._optional import require

__all__ = ["render_report", "svg_figures"]


def _figure(width: float, height: float) -> Any:
    figure_mod = require("matplotlib.figure", extra="evaluation", purpose="the report's plots")
    fig = figure_mod.Figure(figsize=(width, height), layout="constrained")
    return fig


def _svg(fig: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "mlplan", "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "mlplan"})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _confusion(report: dict[str, Any]) -> str | None:
    confusion = report.get("confusion")
    if not confusion:
        return None
    labels = confusion["labels"]
    matrix = confusion["matrix"]
    k = len(labels)
    size = min(2.5 + 0.45 * k, 9)
    fig = _figure(size, size * 0.85)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(r) for r in matrix), default=0) or 1
    if k <= 15:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{matrix[i][j]:,}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if matrix[i][j] > top / 2 else "black",
                )
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("Confusion matrix")
    return _svg(fig)


def _slices(report: dict[str, Any]) -> str | None:
    metric = report["focus_metric"]
    rows = []
    for s in report["slices"]:
        for group in s["groups"]:
            m = group["metrics"].get(metric, {})
            if m.get("value") is not None:
                rows.append(
                    (f"{s['name']}: {group['value']}", m["value"], m.get("low"), m.get("high"))
                )
    if not rows:
        return None
    rows = rows[:60]
    fig = _figure(7.5, 1.2 + 0.28 * len(rows))
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    # Each interval is drawn from its own ends, not as error bars around the value: with few
    # resamples a percentile interval may not hold the value it belongs to.
    spans = [(y, r[2], r[3]) for y, r in zip(ys, rows, strict=True) if r[2] is not None]
    if spans:
        ax.hlines(*zip(*spans, strict=True), color="#7aa6d6")
        for end in (1, 2):
            ax.plot([s[end] for s in spans], [s[0] for s in spans], "|", color="#7aa6d6")
    ax.plot([r[1] for r in rows], ys, "o", color="#1f5fa8")
    overall = report["overall"].get(metric, {}).get("value")
    if overall is not None:
        ax.axvline(overall, color="#888", linestyle="--", linewidth=1, label="overall")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(ys, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel(f"{metric} ({int(report['confidence'] * 100)}% bootstrap interval)")
    ax.set_title(f"{metric} per slice")
    return _svg(fig)


def _calibration(report: dict[str, Any]) -> str | None:
    bins = (report.get("curves") or {}).get("calibration")
    if not bins:
        return None
    fig = _figure(4.2, 4)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888", linewidth=1)
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color="#1f5fa8")
    ax.set_xlabel("confidence (top class probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Calibration")
    return _svg(fig)


def _roc_pr(report: dict[str, Any]) -> str | None:
    found = report.get("curves") or {}
    if "roc" not in found:
        return None
    fig = _figure(8, 3.8)
    roc, pr = fig.subplots(1, 2)
    roc.plot(found["roc"]["fpr"], found["roc"]["tpr"], color="#1f5fa8")
    roc.plot([0, 1], [0, 1], linestyle="--", color="#888", linewidth=1)
    auc = report["overall"].get("roc_auc", {}).get("value")
    roc.set_title("ROC" + (f" (AUC {auc:.3f})" if auc is not None else ""))
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    pr.plot(found["pr"]["recall"], found["pr"]["precision"], color="#1f5fa8")
    ap = report["overall"].get("pr_auc", {}).get("value")
    pr.set_title("Precision-recall" + (f" (AP {ap:.3f})" if ap is not None else ""))
    pr.set_xlabel("recall")
    pr.set_ylabel("precision")
    pr.set_ylim(0, 1.02)
    return _svg(fig)


def _thresholds(report: dict[str, Any]) -> str | None:
    threshold = report.get("threshold")
    if not threshold:
        return None
    table = threshold["table"]
    fig = _figure(6.5, 3.6)
    ax = fig.add_subplot()
    xs = [r["threshold"] for r in table]
    for name, color in (
        ("precision", "#1f5fa8"),
        ("recall", "#d0742c"),
        ("f1", "#2e8b57"),
        ("fpr", "#b03a48"),
    ):
        ys = [math.nan if r[name] is None else r[name] for r in table]
        ax.plot(xs, ys, label=name, color=color)
    ax.axvline(threshold["value"], color="#444", linestyle=":", label="chosen")
    ax.set_xlabel("threshold on the positive class probability")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title("Metrics across thresholds")
    return _svg(fig)


def svg_figures(report: dict[str, Any]) -> dict[str, str]:
    """The report's plots as inline SVG, by name (absent when they do not apply)."""
    import matplotlib

    out = {}
    # Labels are data (a slice value may hold "$"): never parse them as mathtext.
    with matplotlib.rc_context({"text.parse_math": False}):
        out = _draw_all(report)
    return out


def _draw_all(report: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, draw in (
        ("confusion", _confusion),
        ("slices", _slices),
        ("calibration", _calibration),
        ("roc_pr", _roc_pr),
        ("thresholds", _thresholds),
    ):
        svg = draw(report)
        if svg is not None:
            out[name] = svg
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def render_report(report: dict[str, Any]) -> str:
    """The report as one HTML page."""
    jinja2 = require("jinja2", extra="evaluation", purpose="the evaluation report")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)

    template = env.from_string(files("mlplan.evaluation").joinpath("report.html.j2").read_text())
    return str(template.render(r=report, figs=svg_figures(report), fmt=_fmt, pct=_pct))
