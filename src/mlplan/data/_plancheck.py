"""Checking the plan against the registered data: do the target, slices and named columns
exist, does the target fit the task, do slice filter expressions run on the data's schema, and
are the features data rather than ids or row numbers?"""

from __future__ import annotations

import difflib

import pyarrow as pa

from mlplan.core import expression_names
from mlplan.data._columns import id_columns
from mlplan.data._sql import sandboxed_duckdb
from mlplan.data._target import target_problem
from mlplan.data._versions import list_datasets
from mlplan.workspace import Workspace

__all__ = ["check_plan_against_data"]


def _hint(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=2, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _empty_table(columns: list[dict[str, str]]) -> pa.Table:
    fields = []
    for column in columns:
        type_name = column["type"]
        try:
            dtype = pa.type_for_alias(type_name)
        except ValueError:  # dictionary<...>, timestamp[us, tz=...]: close enough for parsing
            dtype = pa.string() if "string" in type_name else pa.float64()
        fields.append(pa.field(column["name"], dtype))
    return pa.schema(fields).empty_table()


def check_plan_against_data(ws: Workspace) -> list[str]:
    """Problems between the plan and the latest version of each registered training dataset.

    Each problem names the plan field, the dataset version and the close column names.
    """

    plan = ws.plan
    problems: list[str] = []
    for summary in list_datasets(ws):
        info = summary.latest
        if info is None or info.metadata.get("role", "training") != "training":
            continue
        columns = info.column_names
        where = f"{ws.plan_path.name}: {info.ref}"
        if info.format == "images":
            continue
        if plan.target and plan.target not in columns:
            problems.append(
                f"{where}: target {plan.target!r} is not a column{_hint(plan.target, columns)}"
            )
        elif plan.target and plan.target in info.profile.get("columns", {}):
            problem = target_problem(
                plan.task,
                plan.target,
                info.profile["columns"][plan.target],
                positive_class=plan.positive_class,
            )
            if problem:
                problems.append(f"{where}: {problem}")
        ids = id_columns(info.profile)
        for column in plan.modeling.features or []:
            if column in ids:
                problems.append(
                    f"{where}: modeling.features names {column!r}, {ids[column]}, which "
                    "only identifies rows: a model would learn the order of the file; remove it"
                )
        earlier: set[str] = set()
        for name, entry in plan.features.items():
            for column in expression_names(entry.expression):
                if column not in columns and column not in earlier:
                    problems.append(
                        f"{where}: feature {name!r} ({entry.expr!r}) reads {column!r}, which "
                        f"is not a column{_hint(column, columns)}"
                    )
            earlier.add(name)
        for spec in plan.slices:
            for column in spec.referenced_columns:
                if column not in columns:
                    problems.append(
                        f"{where}: slice {spec.name!r} uses column {column!r}, which "
                        f"is not in the data{_hint(column, columns)}"
                    )
            if spec.where:
                import duckdb  # on use: it is heavy to import

                con = sandboxed_duckdb()
                try:
                    con.register("data", _empty_table(info.columns))
                    con.execute(f"SELECT count(*) FROM data WHERE {spec.where}")
                except duckdb.Error as exc:
                    reason = str(exc).splitlines()[0]
                    problems.append(
                        f"{where}: slice {spec.name!r}: where {spec.where!r} does "
                        f"not run on the data: {reason}"
                    )
                finally:
                    con.close()
        spec_ = plan.datasets.get(info.name)
        if spec_ is not None:
            for field in ("pii_columns", "sensitive_attributes", "id_column", "time_column"):
                named = getattr(spec_, field)
                for column in [named] if isinstance(named, str) else named or []:
                    if column not in columns:
                        problems.append(
                            f"{where}: datasets.{info.name}.{field} names {column!r}, "
                            f"which is not a column{_hint(column, columns)}"
                        )
    return problems
