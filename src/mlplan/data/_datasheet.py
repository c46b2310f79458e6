"""The datasheet of a dataset version, as Markdown: what it is, where it came from, what is in
it."""

from __future__ import annotations

from typing import Any

from mlplan.data._read import decimal_name, delimiter_name
from mlplan.data._versions import DatasetVersionInfo

__all__ = ["column_rows", "datasheet_markdown", "format_value", "metadata_rows", "profile_note"]


def format_value(value: Any) -> str:
    """A short human form of a profile value.

    Examples
    --------
    >>> format_value(3.14159), format_value(1234567), format_value(None), format_value(0.000012)
    ('3.142', '1,234,567', '—', '1.2e-05')
    >>> format_value(105999.5), format_value(2.0)
    ('105,999.5', '2')
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:,.0f}"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2g}"
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def metadata_rows(
    info: DatasetVersionInfo, metadata: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    """The datasheet's metadata as (field, value) pairs (``metadata``: the effective metadata,
    default the recorded one)."""
    meta = info.metadata if metadata is None else metadata
    collected = meta.get("collected")
    period = f"{collected['start']} – {collected.get('end') or 'ongoing'}" if collected else None

    def listed(key: str) -> str:
        values = meta.get(key)
        if values is None:
            return "— (not stated)"
        return ", ".join(values) if values else "none"

    delimiter = info.delimiter
    split = f", fields split on {delimiter_name(delimiter)}" if delimiter not in (None, ",") else ""
    split += f", {decimal_name(',')}" if info.decimal == "," else ""
    return [
        ("Source", meta.get("source") or "— (not stated)"),
        ("Owner", meta.get("owner") or "— (not stated)"),
        ("License", meta.get("license") or "— (not stated)"),
        ("Collected", period or "— (not stated)"),
        ("Description", meta.get("description") or "— (not stated)"),
        ("PII columns", listed("pii_columns")),
        ("Sensitive attributes", listed("sensitive_attributes")),
        ("Labeling", meta.get("labeling") or "— (not stated)"),
        ("Role", meta.get("role") or "training"),
        ("File", f"{info.source_path} ({info.format}{split}, {info.size_bytes:,} bytes)"),
        ("Content sha256", info.content_hash),
        ("Registered", f"{info.created_at:%Y-%m-%d %H:%M UTC} by run {info.run_id}"),
        ("Profile", profile_note(info.profile)),
    ]


def profile_note(profile: dict[str, Any]) -> str:
    """Whether a profile is exact, else which columns were sketched and within what.

    Examples
    --------
    >>> profile_note({"columns": {"x": {}}})
    'exact'
    >>> profile_note({"columns": {"id": {"sketched": {"distinct": {"method": "HyperLogLog",
    ...     "relative_error": 0.0081}}}}})
    'exact, except: id distinct ≈ (HyperLogLog, ±0.81%)'
    """
    notes = []
    for name, column in profile.get("columns", {}).items():
        for what, sketch in column.get("sketched", {}).items():
            if "relative_error" in sketch:
                bound = f"±{sketch['relative_error']:.2%}"
            elif "rank_error" in sketch:
                bound = f"rank ±{sketch['rank_error']:.2%}"
            else:
                bound = f"counts up to {sketch['count_error']:,} low"
            notes.append(f"{name} {what} ≈ ({sketch['method']}, {bound})")
    return "exact, except: " + "; ".join(notes) if notes else "exact"


def column_rows(info: DatasetVersionInfo) -> list[dict[str, str]]:
    """One row per column: type, missing, distinct, range or top values."""
    rows = []
    for name, col in info.profile.get("columns", {}).items():
        if col["kind"] == "numeric":
            q = col.get("quantiles") or {}
            summary = (
                f"min {format_value(col.get('min'))}, median {format_value(q.get('0.5'))}, "
                f"max {format_value(col.get('max'))}, mean {format_value(col.get('mean'))}"
                f" ± {format_value(col.get('std'))}"
            )
        elif col.get("top_omitted"):
            summary = f"{col['top_omitted']}: not listed"
            if col.get("length", {}).get("mean") is not None:
                summary = f"length {format_value(col['length']['mean'])} on average; " + summary
        elif col.get("top"):
            summary = ", ".join(f"{t['value']} ({t['count']:,})" for t in col["top"][:4])
            if col["kind"] == "text":
                summary = f"length {format_value(col['length']['mean'])} on average; " + summary
        else:
            summary = f"{format_value(col.get('min'))} – {format_value(col.get('max'))}"
        rows.append(
            {
                "column": name,
                "kind": col["kind"],
                "type": col["type"],
                "missing": f"{col['missing']:,} ({col['missing_ratio']:.1%})",
                # A sketched count (too many values to count exactly) is marked as about.
                "distinct": ("≈" if col.get("sketched", {}).get("distinct") else "")
                + format_value(col.get("distinct")),
                "summary": summary,
            }
        )
    return rows


def datasheet_markdown(info: DatasetVersionInfo, metadata: dict[str, Any] | None = None) -> str:
    """The datasheet of ``info`` as Markdown."""
    lines = [
        f"# Datasheet: {info.ref}",
        "",
        f"{info.rows:,} rows × {len(info.columns)} columns.",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in metadata_rows(info, metadata)]
    images = info.profile.get("images")
    if images:
        lines += ["", "## Images", "", "| class | images |", "|---|---|"]
        lines += [f"| {k} | {v:,} |" for k, v in images["classes"].items()]
        lines += ["", "| measure | min | median | max | mean |", "|---|---|---|---|---|"]
        for key in ("width", "height", "brightness", "contrast"):
            m = images[key]
            lines.append(
                f"| {key} | {format_value(m['min'])} | {format_value(m['median'])} | "
                f"{format_value(m['max'])} | {format_value(m['mean'])} |"
            )
    lines += [
        "",
        "## Columns",
        "",
        "| column | kind | missing | distinct | distribution |",
        "|---|---|---|---|---|",
    ]
    for row in column_rows(info):
        summary = row["summary"].replace("|", "\\|")
        lines.append(
            f"| {row['column']} | {row['kind']} | {row['missing']} | {row['distinct']} "
            f"| {summary} |"
        )
    return "\n".join(lines) + "\n"
