"""A dataset version's datasheet: what the plan says, what was given for the version (flags,
``data describe``), and what is known of it now."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from mlplan.core import DatasetRef
from mlplan.data._columns import check_columns
from mlplan.data._privacy import redact_profile
from mlplan.data._versions import DatasetVersionInfo, get_dataset, version_record
from mlplan.errors import ParameterError
from mlplan.plan import DatasetSpec
from mlplan.workspace import Workspace

__all__ = [
    "GIVEN",
    "METADATA_FIELDS",
    "describe_dataset",
    "effective_metadata",
    "given_fields",
    "version_metadata",
]

# The datasheet fields the checklist requires for every dataset (data.metadata).
METADATA_FIELDS = (
    "source",
    "owner",
    "license",
    "collected",
    "description",
    "pii_columns",
    "sensitive_attributes",
)


def _plan_metadata(spec: DatasetSpec) -> dict[str, Any]:
    return {
        "source": spec.source,
        "owner": spec.owner,
        "license": spec.license,
        "collected": (
            {
                "start": spec.collected.start.isoformat(),
                "end": spec.collected.end.isoformat() if spec.collected.end else None,
            }
            if spec.collected
            else None
        ),
        "description": spec.description,
        "pii_columns": spec.pii_columns,
        "sensitive_attributes": spec.sensitive_attributes,
        "id_column": spec.id_column,
        "time_column": spec.time_column,
        "role": spec.role,
        "labeling": spec.labeling.strategy if spec.labeling else None,
    }


GIVEN = "given_by_flags"  # metadata keys set for this version, which the plan does not override
# Set in the plan alone (no flag gives them): its value holds, null ("none") included.
_PLAN_ONLY = frozenset({"id_column", "time_column"})


def given_fields(**values: Any) -> dict[str, Any]:
    """The datasheet fields given (not None), as the store keeps them (dates as ISO text)."""
    collected = values.pop("collected", None)
    out = {k: v for k, v in values.items() if v is not None}
    if collected is not None:
        start, end = collected
        out["collected"] = {"start": start.isoformat(), "end": end.isoformat() if end else None}
    return out


def version_metadata(spec: DatasetSpec, given: dict[str, Any]) -> dict[str, Any]:
    """The metadata a new version is registered with: the plan's, and the fields ``given``."""
    return _plan_metadata(spec) | given | {GIVEN: sorted(given)}


def effective_metadata(ws: Workspace, info: DatasetVersionInfo) -> dict[str, Any]:
    """What is known of a version now: values given for it (flags, ``data describe``) win; the
    plan's datasheet fills and updates the rest (its id and time column, which only the plan
    sets, even when it sets them to null); PII columns named anywhere stay named."""
    recorded = {k: v for k, v in info.metadata.items() if k != GIVEN}
    given = set(info.metadata.get(GIVEN, []))
    spec = ws.plan.datasets.get(info.name)
    if spec is None:
        return recorded
    planned = _plan_metadata(spec)
    out = {}
    for key in recorded | planned:
        if key in given or (planned.get(key) is None and key not in _PLAN_ONLY):
            out[key] = recorded.get(key)
        else:
            out[key] = planned[key]
    if recorded.get("pii_columns") is not None or planned.get("pii_columns") is not None:
        named = [*(planned.get("pii_columns") or []), *(recorded.get("pii_columns") or [])]
        out["pii_columns"] = list(dict.fromkeys(named))
    return out


def describe_dataset(
    ws: Workspace,
    ref: str | DatasetRef,
    *,
    source: str | None = None,
    owner: str | None = None,
    license: str | None = None,
    description: str | None = None,
    collected: tuple[dt.date, dt.date | None] | None = None,
    pii_columns: list[str] | None = None,
    sensitive_attributes: list[str] | None = None,
) -> DatasetVersionInfo:
    """Amend the datasheet of a registered version (no new version: the bytes are the same).

    Recorded as a run, so the lineage shows who changed the description and when.

    Raises
    ------
    ParameterError
        When no field is given.
    DataError
        A PII or sensitive column that is not in the data.
    """
    info = get_dataset(ws, ref)
    given = given_fields(
        source=source,
        owner=owner,
        license=license,
        description=description,
        collected=collected,
        pii_columns=pii_columns,
        sensitive_attributes=sensitive_attributes,
    )
    if not given:
        raise ParameterError(
            (
                "source",
                "owner",
                "license",
                "description",
                "collected",
                "pii_columns",
                "sensitive_attributes",
            ),
            "give at least one field to describe: {source}, {owner}, {license}, "
            "{description}, {collected}, {pii_columns} or {sensitive_attributes}",
        )
    for what, key in (
        ("PII column", "pii_columns"),
        ("sensitive attribute", "sensitive_attributes"),
    ):
        check_columns(what, given.get(key), info.column_names, info.ref)
    with ws.record("data describe", {"dataset": info.ref, **given}) as run:
        _, record = version_record(run.session, ws, info)
        run.input("dataset_version", info.ref, sha256=info.content_hash)
        meta = dict(record.meta)
        meta |= given
        meta[GIVEN] = sorted(set(meta.get(GIVEN, [])) | set(given))
        if "pii_columns" in given:
            profile = copy.deepcopy(record.profile)
            redact_profile(profile, {c: None for c in given["pii_columns"]})
            record.profile = profile
        record.meta = meta
        run.session.flush()
        return DatasetVersionInfo.from_record(record, info.name)
