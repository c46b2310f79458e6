"""The files of a labeling batch: which columns go out, the instructions, and the rendered
batch (CSV with its instructions, or Label Studio tasks with their labeling config)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from mlplan.data import DatasetVersionInfo, effective_metadata
from mlplan.labels._batches import (
    Assignment,
    label_studio_config,
    render_csv,
    render_label_studio,
)
from mlplan.labels._items import ItemTable, classes_of
from mlplan.workspace import Workspace

__all__ = ["BatchFiles", "outgoing_fields", "render_batch"]


@dataclass(frozen=True)
class BatchFiles:
    """A batch's two files, rendered: the batch itself and its sidecar (the instructions, or
    Label Studio's labeling config)."""

    main: Path
    body: str
    sidecar: Path
    sidecar_text: str


def outgoing_fields(
    ws: Workspace,
    info: DatasetVersionInfo,
    items: ItemTable,
    chosen: set[str],
    *,
    include_pii: bool,
    external: bool = False,
) -> dict[str, dict[str, Any]]:
    """Item id → the columns annotators see for it: never the target, the id or the image
    hash; no sensitive attributes for external annotators; no PII unless asked for."""
    meta = effective_metadata(ws, info)
    hidden = {ws.plan.target, meta.get("id_column"), "sha256", "label"}
    if external:  # annotators outside the company need no gender, ethnicity, age...
        hidden |= set(meta.get("sensitive_attributes") or [])
    if not include_pii:
        hidden |= set(meta.get("pii_columns") or [])
        hidden |= {c for c, p in info.profile.get("columns", {}).items() if p.get("pii_suspected")}
    columns = [c for c in items.table.column_names if c not in hidden]
    rows = [i for i, item in enumerate(items.ids) if item in chosen]
    subset = items.table.select(columns).take(pa.array(rows, pa.int64()))
    return {items.ids[i]: record for i, record in zip(rows, subset.to_pylist(), strict=True)}


def render_batch(
    ws: Workspace,
    info: DatasetVersionInfo,
    table: pa.Table,
    *,
    number: int,
    assignments: Sequence[Assignment],
    fields: dict[str, dict[str, Any]],
    fmt: Literal["csv", "labelstudio"],
    out: str | Path | None,
) -> BatchFiles:
    """Batch ``number``'s files, at ``out`` (default: ``labels/batch-N.csv`` or ``.json``)."""
    folder = Path(out).parent if out else ws.root / "labels"
    main = Path(out) if out else folder / f"batch-{number}.{'json' if fmt != 'csv' else 'csv'}"
    if fmt == "csv":
        return BatchFiles(
            main,
            render_csv(assignments, fields, batch=number),
            main.with_suffix(".instructions.md"),
            _instructions_markdown(ws, info, table, number),
        )
    return BatchFiles(
        main,
        render_label_studio(assignments, fields, batch=number),
        main.with_suffix(".config.xml"),
        label_studio_config(ws.plan.labels, classes_of(ws, info, table) or []),
    )


def _instructions_markdown(
    ws: Workspace, info: DatasetVersionInfo, table: pa.Table, number: int
) -> str:
    labels = ws.plan.labels
    classes = classes_of(ws, info, table) or []
    lines = [
        f"# Labeling batch {number} — {info.ref}",
        "",
        labels.instructions or "(the plan has no instructions yet: labels.instructions)",
        "",
        "## Classes",
        "",
    ]
    lines += [f"- **{c}**: {labels.classes.get(c) or '(not defined yet)'}" for c in classes]
    lines += ["", "Fill the `label` column with one class per row; `seconds` is the time spent."]
    return "\n".join(lines) + "\n"
