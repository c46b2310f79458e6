"""The Data items: datasets registered with complete datasheets, profiles, lineage, splits
without leakage, and PII handled."""

from __future__ import annotations

from typing import Any

from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.data import (
    METADATA_FIELDS,
    DatasetSummary,
    DatasetVersionInfo,
    effective_metadata,
    list_datasets,
    list_splits,
)

__all__ = [
    "data_datasets",
    "data_lineage",
    "data_metadata",
    "data_privacy",
    "data_profile",
    "data_splits",
]

_LIST_DATASETS = "edit mlplan.yaml: list the datasets under datasets:"


def _datasets(context: StatusContext) -> list[DatasetSummary]:
    """Every dataset, in the plan or registered."""
    ws = context.ws
    return context.memo("datasets", lambda: list_datasets(ws))


def _registered(context: StatusContext) -> list[DatasetVersionInfo]:
    """The newest version of each registered dataset."""
    return [d.latest for d in _datasets(context) if d.latest is not None]


def _metadata(context: StatusContext, summary: DatasetSummary) -> dict[str, Any]:
    """What is known of a dataset: its latest version's effective metadata, else the plan's."""
    ws = context.ws

    def read() -> dict[str, Any]:
        if summary.latest is not None:
            return effective_metadata(ws, summary.latest)
        spec = ws.plan.datasets.get(summary.name)
        return {f: getattr(spec, f) for f in METADATA_FIELDS} if spec is not None else {}

    return context.memo(f"metadata:{summary.name}", read)


@check("data.datasets")
def data_datasets(context: StatusContext) -> ItemStatus:
    """Every dataset in the plan is registered."""
    if not context.ws.plan.datasets:
        return context.status(
            "data.datasets", "missing", "the plan lists no datasets", _LIST_DATASETS
        )
    absent = [d.name for d in _datasets(context) if d.in_plan and d.latest is None]
    present = ", ".join(f"{v.ref} ({v.rows:,} rows)" for v in _registered(context))
    if absent:
        return context.status(
            "data.datasets",
            "missing",
            f"not registered: {', '.join(absent)}"
            + (f"; registered: {present}" if present else ""),
            f"mlplan data add {absent[0]}",
        )
    return context.status("data.datasets", "done", f"registered: {present}")


@check("data.metadata")
def data_metadata(context: StatusContext) -> ItemStatus:
    """Every datasheet field is filled for every dataset."""
    summaries = _datasets(context)
    planned = [d for d in summaries if d.in_plan] or summaries
    if not planned:
        return context.status("data.metadata", "missing", "no datasets to describe", _LIST_DATASETS)
    lacking: list[str] = []
    for d in planned:
        meta = _metadata(context, d)
        missing = [f for f in METADATA_FIELDS if meta.get(f) is None or meta.get(f) == ""]
        if missing:
            lacking.append(f"{d.name}: {', '.join(missing)}")
    if lacking:
        return context.status(
            "data.metadata",
            "missing",
            "unfilled fields — " + "; ".join(lacking),
            "fill them under datasets: in mlplan.yaml (or pass --source/--owner/... to "
            "mlplan data add)",
        )
    return context.status(
        "data.metadata",
        "done",
        f"all {len(METADATA_FIELDS)} fields filled for {len(planned)} dataset(s)",
    )


@check("data.profile")
def data_profile(context: StatusContext) -> ItemStatus:
    """Every registered version has a profile."""
    registered = _registered(context)
    if not registered:
        return context.status(
            "data.profile",
            "missing",
            "no dataset version registered yet",
            "mlplan data add NAME FILE",
        )
    unprofiled = [v.ref for v in registered if not v.profile]
    if unprofiled:
        return context.status(
            "data.profile",
            "missing",
            f"no profile for {', '.join(unprofiled)}",
            "register the data again: mlplan data add NAME FILE",
        )
    return context.status(
        "data.profile",
        "done",
        "profiled: " + ", ".join(f"{v.ref} ({len(v.columns)} columns)" for v in registered),
    )


@check("data.lineage")
def data_lineage(context: StatusContext) -> ItemStatus:
    """Every registered version has a source and the run that made it."""
    registered = [d for d in _datasets(context) if d.latest is not None]
    if not registered:
        return context.status(
            "data.lineage",
            "missing",
            "no dataset version registered yet",
            "mlplan data add NAME FILE --source TEXT",
        )
    sources = {d.name: _metadata(context, d).get("source") for d in registered}
    no_source = [d.latest.ref for d in registered if d.latest and not sources[d.name]]
    if no_source:
        return context.status(
            "data.lineage",
            "missing",
            f"no source recorded for {', '.join(no_source)}",
            f"set datasets.{no_source[0].split('@')[0]}.source in mlplan.yaml, or: "
            f"mlplan data describe {no_source[0]} --source TEXT",
        )
    return context.status(
        "data.lineage",
        "done",
        "; ".join(
            f"{d.latest.ref} from {sources[d.name]!r} by run {d.latest.run_id[:8]}"
            for d in registered
            if d.latest
        ),
    )


@check("data.splits")
def data_splits(context: StatusContext) -> ItemStatus:
    """The training dataset's newest version has a split, and its leakage checks pass (no
    id or group in two splits), or their failure was accepted on the record."""
    training = [v for v in _registered(context) if v.metadata.get("role", "training") == "training"]
    if not training:
        return context.status(
            "data.splits",
            "missing",
            "no training dataset registered yet",
            "mlplan data add NAME FILE",
        )
    latest = training[0]
    splits = list_splits(context.ws, latest.name)
    current = [sp for sp in splits if sp.version == latest.version]
    target = context.ws.plan.target
    command = f"mlplan data split {latest.name}" + (f" --stratify {target}" if target else "")
    if not current:
        older = f"; the newest split, {splits[-1].ref}, is of an older version" if splits else ""
        return context.status(
            "data.splits", "missing", f"{latest.ref} has no split{older}", command
        )
    split = current[-1]
    shares = ", ".join(f"{k} {v['rows']:,}" for k, v in split.counts.items())
    if not split.failures:
        return context.status("data.splits", "done", f"{split.ref}: {shares}; leakage checks pass")
    if split.accepted is not None:
        return context.status(
            "data.splits",
            "done",
            f"{split.ref}: {shares}; {'; '.join(split.failures)}, accepted on the record: "
            f"{split.accepted}",
        )
    return context.status(
        "data.splits",
        "failing",
        f"{split.ref}: " + "; ".join(split.failures),
        "split with --group on the entity column: "
        + command
        + " --group COLUMN, or accept it on the record: "
        + f"{split.command} --accept-leakage REASON",
    )


@check("data.privacy")
def data_privacy(context: StatusContext) -> ItemStatus:
    """Every dataset states its PII columns, and no column that looks like PII is left out."""
    considered = [d for d in _datasets(context) if d.in_plan or d.latest is not None]
    if not considered:
        return context.status("data.privacy", "missing", "no datasets to check", _LIST_DATASETS)
    pii = {d.name: _metadata(context, d).get("pii_columns") for d in considered}
    overlooked = [
        f"{d.name}.{column} ({suspected})"
        for d in considered
        for column, suspected in _suspected_pii(d).items()
        if column not in (pii[d.name] or [])
    ]
    if overlooked:
        return context.status(
            "data.privacy",
            "failing",
            "looks like PII but not in pii_columns: " + ", ".join(overlooked),
            "add them to datasets.NAME.pii_columns in mlplan.yaml (or rename them if "
            "they hold no personal data)",
        )
    unnamed = [name for name, columns in pii.items() if columns is None]
    if unnamed:
        return context.status(
            "data.privacy",
            "missing",
            f"PII columns not stated for {', '.join(unnamed)}",
            f"set datasets.{unnamed[0]}.pii_columns in mlplan.yaml ([] if none)",
        )
    policy = context.ws.plan.deployment.logging.pii
    return context.status(
        "data.privacy",
        "done",
        f"{sum(len(c or []) for c in pii.values())} PII column(s) named; logs and exports "
        f"{policy} them (deployment.logging.pii: {policy})",
    )


def _suspected_pii(summary: DatasetSummary) -> dict[str, Any]:
    """The columns of a dataset's newest version that its profile suspects of holding PII."""
    if summary.latest is None:
        return {}
    columns = summary.latest.profile.get("columns", {})
    return {c: p["pii_suspected"] for c, p in columns.items() if p.get("pii_suspected")}
