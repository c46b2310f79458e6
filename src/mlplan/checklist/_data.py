"""The Data items: datasets registered with complete datasheets, profiles, lineage, splits
without leakage, and PII handled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlplan.checklist._items import Stage
from mlplan.checklist._status import ItemStatus, StatusContext, register_provider
from mlplan.data import (
    METADATA_FIELDS,
    DatasetSummary,
    effective_metadata,
    list_datasets,
    list_splits,
)
from mlplan.workspace import Workspace

__all__ = ["DataProvider"]


def _metadata(ws: Workspace, summary: DatasetSummary) -> dict[str, Any]:
    """What is known of a dataset: its latest version's effective metadata, else the plan's."""
    if summary.latest is not None:
        return effective_metadata(ws, summary.latest)
    spec = ws.plan.datasets.get(summary.name)
    return {f: getattr(spec, f) for f in METADATA_FIELDS} if spec is not None else {}


@register_provider
class DataProvider:
    """Data: datasets, metadata, profiles, lineage, splits, privacy."""

    stage: Stage = "Data"

    def check(self, context: StatusContext) -> Iterator[ItemStatus]:
        ws = context.ws
        plan = ws.plan
        s = context.status
        summaries = list_datasets(ws)
        registered = [d for d in summaries if d.latest is not None]

        if not plan.datasets:
            yield s(
                "data.datasets",
                "missing",
                "the plan lists no datasets",
                "edit mlplan.yaml: list the datasets under datasets:",
            )
        else:
            absent = [d.name for d in summaries if d.in_plan and d.latest is None]
            present = ", ".join(
                f"{d.latest.ref} ({d.latest.rows:,} rows)"
                for d in registered
                if d.latest is not None
            )
            if absent:
                yield s(
                    "data.datasets",
                    "missing",
                    f"not registered: {', '.join(absent)}"
                    + (f"; registered: {present}" if present else ""),
                    f"mlplan data add {absent[0]}",
                )
            else:
                yield s("data.datasets", "done", f"registered: {present}")

        planned = [d for d in summaries if d.in_plan] or summaries
        lacking: list[str] = []
        for d in planned:
            meta = _metadata(ws, d)
            missing = [f for f in METADATA_FIELDS if meta.get(f) is None or meta.get(f) == ""]
            if missing:
                lacking.append(f"{d.name}: {', '.join(missing)}")
        if not planned:
            yield s(
                "data.metadata",
                "missing",
                "no datasets to describe",
                "edit mlplan.yaml: list the datasets under datasets:",
            )
        elif lacking:
            yield s(
                "data.metadata",
                "missing",
                "unfilled fields — " + "; ".join(lacking),
                "fill them under datasets: in mlplan.yaml (or pass --source/--owner/... to "
                "mlplan data add)",
            )
        else:
            yield s(
                "data.metadata",
                "done",
                f"all {len(METADATA_FIELDS)} fields filled for {len(planned)} dataset(s)",
            )

        if not registered:
            yield s(
                "data.profile",
                "missing",
                "no dataset version registered yet",
                "mlplan data add NAME FILE",
            )
        else:
            unprofiled = [d.latest.ref for d in registered if d.latest and not d.latest.profile]
            if unprofiled:
                yield s(
                    "data.profile",
                    "missing",
                    f"no profile for {', '.join(unprofiled)}",
                    "register the data again: mlplan data add NAME FILE",
                )
            else:
                yield s(
                    "data.profile",
                    "done",
                    "profiled: "
                    + ", ".join(
                        f"{d.latest.ref} ({len(d.latest.columns)} columns)"
                        for d in registered
                        if d.latest
                    ),
                )

        if not registered:
            yield s(
                "data.lineage",
                "missing",
                "no dataset version registered yet",
                "mlplan data add NAME FILE --source TEXT",
            )
        else:
            no_source = [
                d.latest.ref for d in registered if d.latest and not _metadata(ws, d).get("source")
            ]
            if no_source:
                yield s(
                    "data.lineage",
                    "missing",
                    f"no source recorded for {', '.join(no_source)}",
                    f"set datasets.{no_source[0].split('@')[0]}.source in mlplan.yaml, or: "
                    f"mlplan data describe {no_source[0]} --source TEXT",
                )
            else:
                yield s(
                    "data.lineage",
                    "done",
                    "; ".join(
                        f"{d.latest.ref} from {_metadata(ws, d)['source']!r} by run "
                        f"{d.latest.run_id[:8]}"
                        for d in registered
                        if d.latest
                    ),
                )

        yield self._splits(context, registered)
        yield self._privacy(context, summaries)

    def _splits(self, context: StatusContext, registered: list[DatasetSummary]) -> ItemStatus:
        s = context.status
        ws = context.ws
        training = [
            d
            for d in registered
            if d.latest and d.latest.metadata.get("role", "training") == "training"
        ]
        if not training:
            return s(
                "data.splits",
                "missing",
                "no training dataset registered yet",
                "mlplan data add NAME FILE",
            )
        latest = training[0].latest
        assert latest is not None
        splits = list_splits(ws, latest.name)
        current = [sp for sp in splits if sp.version == latest.version]
        target = ws.plan.target
        command = f"mlplan data split {latest.name}" + (f" --stratify {target}" if target else "")
        if not current:
            older = (
                f"; the newest split, {splits[-1].ref}, is of an older version" if splits else ""
            )
            return s("data.splits", "missing", f"{latest.ref} has no split{older}", command)
        split = current[-1]
        leak = split.leakage
        shares = ", ".join(f"{k} {v['rows']:,}" for k, v in split.counts.items())
        if split.passed:
            return s("data.splits", "done", f"{split.ref}: {shares}; leakage checks pass")
        problems = []
        if leak.get("duplicate_groups_across_splits"):
            problems.append(
                f"{leak['duplicate_rows_across_splits']:,} identical rows in more than one split"
            )
        for label in ("groups", "ids"):
            if leak.get(f"{label}_across_splits"):
                problems.append(
                    f"{leak[f'{label}_across_splits']:,} {label} in more than one "
                    f"split (e.g. {', '.join(leak[f'{label}_examples'][:3])})"
                )
        return s(
            "data.splits",
            "failing",
            f"{split.ref}: " + "; ".join(problems),
            "remove duplicates from the data, or split with --group on the entity column: "
            + command
            + " --group COLUMN",
        )

    def _privacy(self, context: StatusContext, summaries: list[DatasetSummary]) -> ItemStatus:
        s = context.status
        ws = context.ws
        considered = [d for d in summaries if d.in_plan or d.latest is not None]
        if not considered:
            return s(
                "data.privacy",
                "missing",
                "no datasets to check",
                "edit mlplan.yaml: list the datasets under datasets:",
            )
        unnamed = []
        overlooked = []
        named_count = 0
        for d in considered:
            meta = _metadata(ws, d)
            pii = meta.get("pii_columns")
            if d.latest is not None:
                for column, profile in d.latest.profile.get("columns", {}).items():
                    if profile.get("pii_suspected") and column not in (pii or []):
                        overlooked.append(f"{d.name}.{column} ({profile['pii_suspected']})")
            if pii is None:
                unnamed.append(d.name)
            else:
                named_count += len(pii)
        if overlooked:
            return s(
                "data.privacy",
                "failing",
                "looks like PII but not in pii_columns: " + ", ".join(overlooked),
                "add them to datasets.NAME.pii_columns in mlplan.yaml (or rename them if "
                "they hold no personal data)",
            )
        if unnamed:
            return s(
                "data.privacy",
                "missing",
                f"PII columns not stated for {', '.join(unnamed)}",
                f"set datasets.{unnamed[0]}.pii_columns in mlplan.yaml ([] if none)",
            )
        policy = ws.plan.deployment.logging.pii
        return s(
            "data.privacy",
            "done",
            f"{named_count} PII column(s) named; logs and exports {policy} them "
            f"(deployment.logging.pii: {policy})",
        )
