"""Registering dataset versions, on SQLite and on PostgreSQL: versions, metadata, redaction,
snapshots, and a store left untouched when registration fails."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
import sqlalchemy as sa
from tests.conftest import customers_table, edit_plan, write_csv

from mlplan.data import (
    get_dataset,
    list_datasets,
    load_table,
    metadata_rows,
    read_table,
    register_dataset,
)
from mlplan.errors import DataError, DatasetNotFoundError, ParameterError, RefError, UsageError
from mlplan.store import Base, ProjectRecord
from mlplan.workspace import Workspace, approve


def _edit_plan(root: Path, old: str, new: str) -> None:
    plan = root / "mlplan.yaml"
    text = plan.read_text()
    assert old in text, old
    plan.write_text(text.replace(old, new, 1))


def _row_counts(ws: Workspace) -> dict[str, int]:
    with ws.store.engine.connect() as connection:
        return {
            table.name: connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def _artifact_files(ws: Workspace) -> list[Path]:
    """The files in the artifact folder but its gc lock (which a command creates once)."""
    root = ws.store.artifacts.root
    found = root.rglob("*") if root.exists() else []
    return sorted(p for p in found if p.is_file() and p.name != ".gc.lock")


# -- versions --------------------------------------------------------------------------------


def test_first_registration_creates_version_1(ws: Workspace) -> None:
    result = register_dataset(ws, "customers")
    info = result.version

    assert result.created is True
    assert result.warnings == []
    assert (info.ref, info.version, info.format, info.rows) == ("customers@1", 1, "csv", 400)
    assert info.source_path == "data/customers.csv"
    assert info.column_names == [
        "customer_id",
        "name",
        "email",
        "gender",
        "age",
        "region",
        "charges",
        "churned",
    ]
    assert info.columns[0] == {"name": "customer_id", "type": "int64", "kind": "numeric"}
    data = (ws.root / "data" / "customers.csv").read_bytes()
    assert info.size_bytes == len(data)
    assert info.profile["rows"] == 400
    assert info.snapshot_sha256 == info.content_hash  # the snapshot is the file's bytes
    assert info.created_at.tzinfo is not None


def test_same_bytes_again_return_the_existing_version(ws: Workspace) -> None:
    first = register_dataset(ws, "customers")
    counts = _row_counts(ws)
    again = register_dataset(ws, "customers")

    assert again.created is False
    assert again.version.ref == "customers@1"
    assert again.version.content_hash == first.version.content_hash
    assert _row_counts(ws) == counts  # no new run, no new version


def test_a_large_file_is_hashed_while_the_profile_s_hashing_loads(
    sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a size (lowered here) the file is hashed in a thread while DuckDB loads for the
    profile: the same content hash, and the same bytes again are found without a read."""
    import hashlib

    import mlplan.data._registry as registry

    monkeypatch.setattr(registry, "_PREPARE_BYTES", 0)
    first = register_dataset(sqlite_ws, "customers")
    path = sqlite_ws.root / "data" / "customers.csv"
    assert first.version.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    again = register_dataset(sqlite_ws, "customers")
    assert again.created is False and again.version.ref == "customers@1"


def test_a_registration_as_json_is_the_version_without_its_profile(ws: Workspace) -> None:
    result = register_dataset(ws, "customers", source="CRM")
    again = register_dataset(ws, "customers", owner="Dana")

    version = {k: v for k, v in result.version.to_dict().items() if k != "profile"}
    assert result.to_dict() == {"created": True, "warnings": [], **version}
    assert again.to_dict() == {"created": False, "warnings": again.warnings, **version}
    assert list(again.to_dict())[:3] == ["created", "warnings", "ref"]
    assert json.loads(json.dumps(again.to_dict())) == again.to_dict()


def test_changed_bytes_make_version_2(ws: Workspace) -> None:
    register_dataset(ws, "customers")
    write_csv(customers_table(rows=300, seed=8), ws.root / "data" / "customers.csv")
    second = register_dataset(ws, "customers")

    assert second.created is True
    assert (second.version.ref, second.version.rows) == ("customers@2", 300)
    assert [v.version for v in (get_dataset(ws, "customers@1"), get_dataset(ws, "customers"))] == [
        1,
        2,
    ]


def test_stored_version_reads_back_as_registered(ws: Workspace) -> None:
    registered = register_dataset(ws, "customers").version
    stored = get_dataset(ws, "customers@1")
    assert stored.to_dict() == registered.to_dict()


def test_registration_is_recorded_as_a_run_with_its_input_and_output(ws: Workspace) -> None:
    from mlplan.store import RunIORecord, RunRecord

    info = register_dataset(ws, "customers").version
    with ws.store.transaction() as session:
        run = session.get(RunRecord, info.run_id)
        assert run is not None
        assert run.job == "data add"
        assert run.parameters["dataset"] == "customers"
        ios = {
            (io.direction, io.kind, io.ref, io.sha256)
            for io in session.scalars(sa.select(RunIORecord))
        }
    assert ios == {
        ("input", "file", "data/customers.csv", info.content_hash),
        ("output", "dataset_version", "customers@1", info.content_hash),
    }


# -- metadata --------------------------------------------------------------------------------


def test_metadata_comes_from_the_plan_merged_with_keyword_overrides(
    project_dir: Path, ws: Workspace
) -> None:
    _edit_plan(project_dir, "    source: null  # TODO: where", '    source: "CRM export"  #')
    _edit_plan(project_dir, "    license: null", "    license: CC-BY-4.0")
    info = register_dataset(
        ws,
        "customers",
        owner="data team",
        collected=(dt.date(2025, 1, 1), None),
        sensitive_attributes=["gender", "age"],
    ).version

    assert info.metadata == {
        "source": "CRM export",  # the plan
        "license": "CC-BY-4.0",  # the plan
        "owner": "data team",  # keyword
        "collected": {"start": "2025-01-01", "end": None},  # keyword
        "description": None,
        "pii_columns": ["name", "email"],  # the plan
        "sensitive_attributes": ["gender", "age"],  # keyword
        "id_column": None,
        "time_column": None,
        "role": "training",
        "labeling": "in-house",
        "given_by_flags": ["collected", "owner", "sensitive_attributes"],
    }


def test_keyword_overrides_replace_the_plans_values(ws: Workspace) -> None:
    info = register_dataset(ws, "customers", pii_columns=["email"], description="d").version
    assert info.metadata["pii_columns"] == ["email"]
    assert info.metadata["description"] == "d"


def test_pii_values_never_reach_the_store(ws: Workspace) -> None:
    info = register_dataset(ws, "customers").version
    stored = json.dumps(get_dataset(ws, "customers@1").to_dict())

    assert "@example.com" not in stored
    assert "Person 1" not in stored
    email = info.profile["columns"]["email"]
    assert email["redacted"] is True
    assert {t["value"] for t in email["top"]} == {"<pii>"}
    assert email["count"] == 400  # counts stay
    # Columns that are not PII keep their values.
    assert {t["value"] for t in info.profile["columns"]["region"]["top"]} == {
        "north",
        "south",
        "east",
    }


def test_numeric_pii_columns_lose_their_statistics(ws: Workspace) -> None:
    info = register_dataset(ws, "customers", pii_columns=["age"]).version
    age = info.profile["columns"]["age"]
    assert (age["min"], age["max"], age["mean"], age["std"]) == ("<pii>", "<pii>", None, None)
    assert set(age["quantiles"].values()) == {None}
    assert age["distinct"] > 0


def test_dataset_not_in_the_plan_registers_with_a_warning(ws: Workspace) -> None:
    path = write_csv(customers_table(50), ws.root / "data" / "extra.csv")
    result = register_dataset(ws, "extra", path)
    assert result.created is True
    assert result.warnings[0] == (
        "dataset 'extra' is not in the plan; add it under 'datasets:' in mlplan.yaml so its "
        "datasheet lives with the plan"
    )
    # Nothing says which columns hold personal data, so the suspects are named and redacted.
    assert [w.split("'")[1] for w in result.warnings[1:]] == ["name", "email"]
    stored = json.dumps(result.version.to_dict())
    assert "person1@example.com" not in stored and "Person 1" not in stored


def test_undeclared_personal_data_is_kept_out_of_the_store(sqlite_ws: Workspace) -> None:
    table = customers_table(80).rename_columns(
        ["customer_id", "contact_name", "contact", "gender", "age", "region", "charges", "churned"]
    )
    path = write_csv(table, sqlite_ws.root / "data" / "leads.csv")
    result = register_dataset(sqlite_ws, "leads", path)
    columns = result.version.profile["columns"]
    assert columns["contact"]["pii_suspected"] == "values look like e-mail addresses"
    assert {t["value"] for t in columns["contact"]["top"]} <= {"<pii>"}
    # Near-unique text keeps no top values at all: they would identify rows.
    assert columns["contact_name"]["top"] == []
    assert "example.com" not in json.dumps(result.version.to_dict())


# -- failures write nothing ------------------------------------------------------------------


def test_target_missing_from_the_data_names_close_columns(ws: Workspace) -> None:
    table = customers_table(50).rename_columns(
        ["customer_id", "name", "email", "gender", "age", "region", "charges", "churn"]
    )
    path = write_csv(table, ws.root / "data" / "customers.csv")
    before = _row_counts(ws)
    with pytest.raises(
        DataError,
        match=rf"^{re.escape(str(path))}: the plan's target 'churned' is not a column of the data "
        r"\(did you mean 'churn' or 'charges'\?\)\. Fix 'target:' in mlplan\.yaml, or mark the "
        r"dataset role: unlabeled",
    ):
        register_dataset(ws, "customers")
    assert _row_counts(ws) == before
    assert _artifact_files(ws) == []


def test_unlabeled_dataset_needs_no_target(project_dir: Path, ws: Workspace) -> None:
    _edit_plan(
        project_dir, "    labeling: {strategy", "    role: unlabeled\n    labeling: {strategy"
    )
    write_csv(customers_table(50).drop_columns(["churned"]), project_dir / "data" / "customers.csv")
    assert register_dataset(ws, "customers").version.metadata["role"] == "unlabeled"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"pii_columns": ["emial"]},
            r"PII column 'emial' is not a column of the data "
            r"\(did you mean 'email'\?\) \(columns: customer_id, name",
        ),
        (
            {"sensitive_attributes": ["gendr"]},
            r"sensitive attribute 'gendr' is not a column of "
            r"the data \(did you mean 'gender' or 'age'\?\)",
        ),
        ({"pii_columns": ["ssn"]}, r"PII column 'ssn' is not a column of the data \(columns:"),
    ],
    ids=["pii-typo", "sensitive-typo", "pii-unknown"],
)
def test_named_columns_missing_from_the_data_fail_and_write_nothing(
    ws: Workspace, kwargs: dict[str, list[str]], message: str
) -> None:
    before = _row_counts(ws)
    with pytest.raises(DataError, match=message):
        register_dataset(ws, "customers", **kwargs)
    assert _row_counts(ws) == before
    assert _artifact_files(ws) == []


def test_pii_column_from_the_plan_missing_from_the_data_fails(ws: Workspace) -> None:
    write_csv(customers_table(50).drop_columns(["email"]), ws.root / "data" / "customers.csv")
    before = _row_counts(ws)
    with pytest.raises(DataError, match=r"PII column 'email' is not a column of the data"):
        register_dataset(ws, "customers")
    assert _row_counts(ws) == before


def test_unreadable_file_fails_and_writes_nothing(ws: Workspace) -> None:
    (ws.root / "data" / "customers.csv").write_text("customer_id,churned\n1,0\n2\n")
    before = _row_counts(ws)
    with pytest.raises(DataError, match=r"customers\.csv:3: row has 1 fields, the header has 2"):
        register_dataset(ws, "customers")
    assert _row_counts(ws) == before
    assert _artifact_files(ws) == []


@pytest.mark.parametrize("name", ["1st", "my data", "_x", "a/b", "evil\n"], ids=repr)
def test_invalid_dataset_name_is_a_usage_error(sqlite_ws: Workspace, name: str) -> None:
    with pytest.raises(UsageError, match=r"must start with a letter and hold only letters"):
        register_dataset(sqlite_ws, name, sqlite_ws.root / "data" / "customers.csv")


def test_dataset_without_a_path_is_a_usage_error(sqlite_ws: Workspace) -> None:
    with pytest.raises(
        UsageError,
        match=r"no path for dataset 'other': give one \(mlplan data add other FILE\) or set "
        r"datasets\.other\.path in mlplan\.yaml",
    ):
        register_dataset(sqlite_ws, "other")


# -- snapshots -------------------------------------------------------------------------------


def test_snapshot_keeps_the_data_after_the_file_is_deleted(ws: Workspace) -> None:
    path = ws.root / "data" / "customers.csv"
    original = read_table(path, "csv")
    info = register_dataset(ws, "customers").version
    path.unlink()
    assert load_table(ws, info).equals(original)


def test_without_snapshot_the_unchanged_source_file_is_read(ws: Workspace) -> None:
    path = ws.root / "data" / "customers.csv"
    info = register_dataset(ws, "customers", snapshot=False).version
    assert info.snapshot_sha256 is None
    assert _artifact_files(ws) == []
    assert load_table(ws, info).equals(read_table(path, "csv"))


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_without_snapshot_a_changed_source_cannot_be_loaded(ws: Workspace, change: str) -> None:
    path = ws.root / "data" / "customers.csv"
    info = register_dataset(ws, "customers", snapshot=False).version
    if change == "edit":
        write_csv(customers_table(rows=10), path)
    else:
        path.unlink()
    with pytest.raises(
        DataError,
        match=r"the data of customers@1 is not at hand: no snapshot in the store and "
        r"data/customers\.csv is missing or has changed since it was registered\. Restore the "
        r"file, or register the current file as a new version with: mlplan data add customers",
    ):
        load_table(ws, info)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_parquet_and_jsonl_register_and_load_from_their_snapshot(
    sqlite_ws: Workspace, fmt: str
) -> None:
    table = customers_table(60)
    path = sqlite_ws.root / "data" / f"customers.{fmt}"
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        path.write_text("\n".join(json.dumps(r) for r in table.to_pylist()) + "\n")
    info = register_dataset(sqlite_ws, "customers", path).version
    assert (info.format, info.rows) == (fmt, 60)
    path.unlink()
    loaded = load_table(sqlite_ws, info)
    assert loaded.num_rows == 60
    assert loaded.column("email").to_pylist() == table.column("email").to_pylist()


def test_tsv_dataset_loads_back_with_its_columns(sqlite_ws: Workspace) -> None:
    table = customers_table(50)
    path = sqlite_ws.root / "data" / "customers.tsv"
    pcsv.write_csv(table, path, pcsv.WriteOptions(delimiter="\t"))
    info = register_dataset(sqlite_ws, "customers", path).version
    assert info.column_names == table.column_names  # the registration itself reads tabs
    assert load_table(sqlite_ws, info).column_names == table.column_names


def _semicolon_csv(path: Path, table: pa.Table) -> Path:
    """``table`` as a spreadsheet in a comma-decimal locale writes it: ';' between fields."""
    lines = [";".join(table.column_names)]
    for row in table.to_pylist():
        lines.append(
            ";".join(
                "" if v is None else str(v).replace(".", ",") if isinstance(v, float) else str(v)
                for v in row.values()
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_semicolon_file_registers_with_its_columns_and_says_how_it_was_split(
    sqlite_ws: Workspace,
) -> None:
    table = customers_table(50)
    path = _semicolon_csv(sqlite_ws.root / "data" / "customers.csv", table)
    info = register_dataset(sqlite_ws, "customers", path).version
    assert info.column_names == table.column_names
    assert (info.delimiter, info.profile["delimiter"], info.to_dict()["delimiter"]) == (";",) * 3
    assert dict(metadata_rows(info))["File"].startswith(
        "data/customers.csv (csv, fields split on ';' (semicolon), "
    )
    path.unlink()  # read back from the snapshot, split the same way
    assert load_table(sqlite_ws, info).column_names == table.column_names


def test_the_delimiter_given_or_in_the_plan_is_used_over_the_one_found(
    sqlite_ws: Workspace,
) -> None:
    edit_plan(sqlite_ws, "  customers:\n", "  codes:\n    role: auxiliary\n  customers:\n")
    path = sqlite_ws.root / "data" / "codes.csv"
    path.write_text("code|label,extra\n1|a,b\n2|c,d\n")  # comma and pipe fit alike
    with pytest.raises(
        DataError,
        match=r"each split the header and the lines after it into as many fields\. Name it with "
        r"'delimiter' \(or datasets\.codes\.delimiter in mlplan\.yaml\)",
    ):
        register_dataset(sqlite_ws, "codes", path)
    assert _artifact_files(sqlite_ws) == []
    given = register_dataset(sqlite_ws, "codes", path, delimiter="pipe").version
    assert (given.column_names, given.delimiter) == (["code", "label,extra"], "|")

    edit_plan(sqlite_ws, "    role: auxiliary\n", "    role: auxiliary\n    delimiter: comma\n")
    path.write_text("code|label,extra\n1|a,b\n2|c,d\n3|e,f\n")
    planned = register_dataset(sqlite_ws, "codes", path).version
    assert (planned.column_names, planned.delimiter) == (["code|label", "extra"], ",")


@pytest.mark.parametrize(
    ("name", "delimiter", "message"),
    [
        (
            "customers.csv",
            "::",
            r"'delimiter' must be one character \(not a quote or a line "
            r"break\) or one of comma, semicolon, tab, pipe; got '::'",
        ),
        ("customers.parquet", ";", r"'delimiter' is for CSV files; the data is parquet"),
    ],
    ids=["not-one-character", "not-csv"],
)
def test_a_delimiter_that_cannot_be_used_is_refused(
    sqlite_ws: Workspace, name: str, delimiter: str, message: str
) -> None:
    path = sqlite_ws.root / "data" / name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(customers_table(10), path)
    with pytest.raises(ParameterError, match=message):
        register_dataset(sqlite_ws, "customers", path, delimiter=delimiter)


def test_a_version_registered_before_delimiters_were_recorded_reads_as_it_did(
    sqlite_ws: Workspace,
) -> None:
    path = sqlite_ws.root / "data" / "customers.tsv"
    pcsv.write_csv(customers_table(20), path, pcsv.WriteOptions(delimiter="\t"))
    info = register_dataset(sqlite_ws, "customers", path).version
    old = dataclasses.replace(
        info, profile={k: v for k, v in info.profile.items() if k != "delimiter"}
    )
    assert old.delimiter == "\t"  # by the suffix, as then
    assert load_table(sqlite_ws, old).column_names == info.column_names


def test_decimal_commas_are_read_as_numbers_recorded_and_shown(sqlite_ws: Workspace) -> None:
    # Before: charges (60,25) was a category of hundreds of values, the model at chance.
    table = customers_table(50)
    path = _semicolon_csv(sqlite_ws.root / "data" / "customers.csv", table)
    info = register_dataset(sqlite_ws, "customers", path).version
    assert (info.decimal, info.profile["decimal"], info.to_dict()["decimal"]) == (",",) * 3
    assert info.profile["columns"]["charges"]["kind"] == "numeric"
    assert "decimal comma (4,36 is 4.36)" in dict(metadata_rows(info))["File"]
    path.unlink()  # read back from the snapshot with the same mark
    loaded = load_table(sqlite_ws, info)
    assert loaded.column("charges").to_pylist() == table.column("charges").to_pylist()


def test_the_decimal_given_or_in_the_plan_is_used_over_the_one_found(
    sqlite_ws: Workspace,
) -> None:
    path = _semicolon_csv(sqlite_ws.root / "data" / "customers.csv", customers_table(50))
    given = register_dataset(sqlite_ws, "customers", path, decimal=".").version
    assert (given.decimal, "decimal" in given.profile) == (".", False)
    assert given.profile["columns"]["charges"]["kind"] != "numeric"
    edit_plan(sqlite_ws, "    owner: null\n", '    owner: null\n    decimal: ","\n')
    with path.open("a") as fh:
        fh.write("51;Person 51;person51@example.com;male;40;north;70,5;0\n")
    planned = register_dataset(sqlite_ws, "customers", path).version
    assert (planned.version, planned.decimal) == (2, ",")
    with pytest.raises(ParameterError, match=r"'decimal' is '\.' or ','; got ';'"):
        register_dataset(sqlite_ws, "customers", path, decimal=";")


def test_a_decimal_mark_stated_for_unchanged_content_is_said_not_applied(
    sqlite_ws: Workspace,
) -> None:
    path = _semicolon_csv(sqlite_ws.root / "data" / "customers.csv", customers_table(20))
    register_dataset(sqlite_ws, "customers", path, decimal=".")
    edit_plan(sqlite_ws, "    owner: null\n", '    owner: null\n    decimal: ","\n')
    again = register_dataset(sqlite_ws, "customers", path)
    assert (again.created, again.version.decimal) == (False, ".")
    assert again.warnings == [
        "decimal ',' (it was read with '.') not applied: the content is unchanged, so "
        "customers@1 keeps the reading it was registered with; a version is read one way only"
    ]


def test_a_version_registered_before_decimal_commas_were_found_reads_as_it_did(
    sqlite_ws: Workspace,
) -> None:
    path = _semicolon_csv(sqlite_ws.root / "data" / "customers.csv", customers_table(20))
    info = register_dataset(sqlite_ws, "customers", path).version
    old = dataclasses.replace(
        info, profile={k: v for k, v in info.profile.items() if k != "decimal"}
    )
    assert old.decimal == "."  # as then: its charges were strings
    assert pa.types.is_string(load_table(sqlite_ws, old).schema.field("charges").type)


def test_the_plans_id_column_holds_after_registration_null_included(
    sqlite_ws: Workspace,
) -> None:
    from mlplan.data import effective_metadata, split_dataset

    edit_plan(sqlite_ws, "    id_column: null", "    id_column: customer_id")
    info = register_dataset(sqlite_ws, "customers").version
    assert effective_metadata(sqlite_ws, info)["id_column"] == "customer_id"
    # Before: set back to null after data add, the plan was ignored (the split kept the id).
    edit_plan(sqlite_ws, "    id_column: customer_id", "    id_column: null")
    assert effective_metadata(sqlite_ws, info)["id_column"] is None
    assert "ids_across_splits" not in split_dataset(sqlite_ws, "customers").leakage


# -- get and list ----------------------------------------------------------------------------


def test_name_alone_and_latest_mean_the_latest_version(ws: Workspace) -> None:
    register_dataset(ws, "customers")
    write_csv(customers_table(rows=100), ws.root / "data" / "customers.csv")
    register_dataset(ws, "customers")
    assert get_dataset(ws, "customers").ref == "customers@2"
    assert get_dataset(ws, "customers@latest").ref == "customers@2"
    assert get_dataset(ws, "customers@1").rows == 400


def test_unknown_dataset_lists_known_names_and_suggests_close_ones(ws: Workspace) -> None:
    register_dataset(ws, "customers")
    register_dataset(ws, "orders", write_csv(customers_table(20), ws.root / "orders.csv"))
    with pytest.raises(
        DatasetNotFoundError,
        match=r"^dataset 'custmers' not found \(did you mean 'customers'\?\)\. Known: customers, "
        r"orders\. Register it with: mlplan data add custmers FILE$",
    ):
        get_dataset(ws, "custmers")


def test_unknown_dataset_in_an_empty_store_says_none_is_registered(ws: Workspace) -> None:
    with pytest.raises(
        DatasetNotFoundError, match=r"dataset 'customers' not found\. No dataset is registered\."
    ):
        get_dataset(ws, "customers")


def test_unknown_version_lists_the_known_versions(ws: Workspace) -> None:
    register_dataset(ws, "customers")
    write_csv(customers_table(rows=100), ws.root / "data" / "customers.csv")
    register_dataset(ws, "customers")
    with pytest.raises(
        DatasetNotFoundError, match=r"^'customers@7' not found; known: customers@1, customers@2$"
    ):
        get_dataset(ws, "customers@7")


def test_malformed_reference_is_a_ref_error(sqlite_ws: Workspace) -> None:
    with pytest.raises(RefError, match=r"'customers@x' is not a dataset reference"):
        get_dataset(sqlite_ws, "customers@x")


def test_list_datasets_puts_planned_ones_first(ws: Workspace) -> None:
    assert [(s.name, s.versions, s.latest, s.in_plan) for s in list_datasets(ws)] == [
        ("customers", 0, None, True)
    ]
    register_dataset(ws, "another", write_csv(customers_table(20), ws.root / "b.csv"))
    register_dataset(ws, "customers")
    summaries = list_datasets(ws)
    assert [(s.name, s.versions, s.in_plan) for s in summaries] == [
        ("customers", 1, True),
        ("another", 1, False),
    ]
    assert summaries[0].latest is not None
    assert summaries[0].latest.ref == "customers@1"


def test_datasets_of_another_project_in_the_same_store_stay_apart(
    ws: Workspace, store_url: str, tmp_path: Path
) -> None:
    register_dataset(ws, "customers")
    other_root = tmp_path / "other"
    other_root.mkdir()
    text = (ws.root / "mlplan.yaml").read_text().replace('name: "churn"', 'name: "fraud"')
    text = re.sub(r'\n  key: "\w+"', "\n  key: fraud-team-1", text)  # another project
    (other_root / "mlplan.yaml").write_text(text)
    other = Workspace(other_root, store_url=store_url)
    try:
        with pytest.raises(DatasetNotFoundError, match=r"No dataset is registered"):
            get_dataset(other, "customers")
        write_csv(customers_table(), other_root / "data" / "customers.csv")
        # the same bytes in another project are a first version there, not a reuse
        assert register_dataset(other, "customers").created is True
    finally:
        other.close()


def test_a_renamed_project_keeps_its_records(ws: Workspace, store_url: str) -> None:
    register_dataset(ws, "customers")
    plan = ws.root / "mlplan.yaml"
    plan.write_text(plan.read_text().replace('name: "churn"', 'name: "churn-v2"'))
    renamed = Workspace(ws.root, store_url=store_url)
    try:
        assert get_dataset(renamed, "customers").ref == "customers@1"
        assert register_dataset(renamed, "customers").created is False  # the same bytes
        approve(renamed, "buy_in", role="business_owner", by="Dana")  # any write renames
        with renamed.store.transaction() as session:
            assert session.scalars(sa.select(ProjectRecord.name)).all() == ["churn-v2"]
    finally:
        renamed.close()


def test_columns_keep_file_order_through_the_store(ws: Workspace) -> None:
    from mlplan.data import column_rows

    register_dataset(ws, "customers")
    info = get_dataset(ws, "customers")
    assert list(info.profile["columns"]) == info.column_names
    assert [row["column"] for row in column_rows(info)] == info.column_names


def test_profile_of_a_registered_version_is_json(ws: Workspace) -> None:
    # NaN and infinities are not JSON; a float column with NaN must still store.
    table = pa.table({"churned": [0, 1, 0], "x": [1.0, float("nan"), 2.0]})
    path = ws.root / "data" / "nan.parquet"
    import pyarrow.parquet as pq

    pq.write_table(table, path)
    info = register_dataset(ws, "nan", path).version
    json.dumps(get_dataset(ws, "nan").to_dict(), allow_nan=False)
    assert info.profile["columns"]["x"]["missing"] == 1


def test_metadata_for_unchanged_content_is_ignored_with_a_warning(sqlite_ws: Workspace) -> None:
    first = register_dataset(sqlite_ws, "customers", source="CRM")
    again = register_dataset(sqlite_ws, "customers", source="somewhere else", owner="me")
    assert again.created is False
    assert again.version.metadata["source"] == "CRM"
    assert again.warnings == [
        "--source, --owner ignored: the content is unchanged, so customers@1 keeps the "
        "metadata it was registered with"
    ]
    assert first.version.ref == again.version.ref


def test_a_csv_snapshot_is_written_as_the_file_is_read_and_a_file_changed_meanwhile_is_refused(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pass over the bytes gives the rows, the line count and the snapshot (no separate
    line count, no second copy); the snapshot must hash as the file did before the read,
    else nothing is stored."""
    import mlplan.data._read as reading
    import mlplan.store._artifacts as artifacts

    def no_second_pass(*_: object) -> None:
        raise AssertionError("read again")

    monkeypatch.setattr(reading, "count_lines", no_second_pass)
    monkeypatch.setattr(artifacts.ArtifactStore, "put_file", no_second_pass)
    path = tmp_path / "x.csv"
    path.write_text("a,churned\n" + "".join(f"{i},{i % 2}\n" for i in range(500)))
    result = register_dataset(ws, "x", path)
    snapshot = ws.store.artifacts.path(result.version.snapshot_sha256)
    assert snapshot.read_bytes() == path.read_bytes() and result.version.rows == 500

    path.write_text("a,churned\n" + "".join(f"{i},{(i + 1) % 2}\n" for i in range(500)))
    changed = path.read_bytes()
    real_read = reading._Tee.read

    def appended_during_read(self: reading._Tee, size: int = -1) -> bytes:
        chunk = real_read(self, size)
        if path.read_bytes() == changed:  # another program appends once the read began
            path.write_bytes(changed + b"999,1\n")
        return chunk

    monkeypatch.setattr(reading._Tee, "read", appended_during_read)
    stored, rows = _artifact_files(ws), _row_counts(ws)
    with pytest.raises(DataError, match="changed while it was read"):
        register_dataset(ws, "x", path)
    assert _artifact_files(ws) == stored and _row_counts(ws) == rows  # nothing half-written


def test_a_parquet_file_changed_while_it_is_read_is_refused_with_nothing_stored(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    import mlplan.data._registry as registry

    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": list(range(50)), "churned": [i % 2 for i in range(50)]}), path)
    real_scan = registry.scan_table

    def scan_then_rewrite(*args: Any, **kwargs: Any) -> Any:
        scanned = real_scan(*args, **kwargs)
        pq.write_table(pa.table({"a": [1], "churned": [0]}), path)  # another program writes
        return scanned

    monkeypatch.setattr(registry, "scan_table", scan_then_rewrite)
    stored, rows = _artifact_files(ws), _row_counts(ws)
    with pytest.raises(DataError, match="changed while it was read"):
        register_dataset(ws, "x", path)
    assert _artifact_files(ws) == stored and _row_counts(ws) == rows
