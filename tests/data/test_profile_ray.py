"""Profiling on Ray (``data add --engine ray``): partial profiles merged give the local
engine's profile — exact parts equal, sketched parts within the bounds the profile states —
on a real local Ray cluster, one for the module."""

from __future__ import annotations

import pickle
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import write_churn_project
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.data import Profiler, get_dataset, profile_table, register_dataset, scan_table
from mlplan.data._profile_ray import profile_on_ray
from mlplan.errors import DataError, MissingExtraError, ParameterError
from mlplan.store import RunRecord
from mlplan.workspace import Workspace

_FLOAT_KEYS = {"mean", "std"}


def _mixed(rows: int, seed: int = 5) -> pa.Table:
    """Every kind of column; ``wide`` and ``label`` have more distinct values than are
    counted exactly (sketched), ``id`` only ever increases (exact however many)."""
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": np.arange(rows),
            "few": pa.array(rng.integers(0, 20, rows), mask=rng.random(rows) < 0.1),
            "wide": rng.normal(size=rows).round(6),
            "region": pa.array(rng.choice(["north", "south", "east"], rows)),
            "label": pa.array([f"u{i}" for i in rng.integers(0, 150_000, rows)]),
            "flag": rng.random(rows) < 0.3,
            "when": pa.array(rng.integers(0, 10**6, rows).astype("datetime64[s]")),
            "churned": (rng.random(rows) < 0.2).astype(np.int64),  # the plan's target
        }
    )


def _local_profile(path: Path, fmt: Any) -> dict[str, Any]:
    """The profile the local engine makes of a file (before ``data add`` redacts it)."""
    profilers: list[Profiler] = []

    def start(schema: pa.Schema) -> Any:
        profilers.append(Profiler(schema))
        return profilers[-1].add

    scan_table(path, fmt, start, delimiter="," if fmt == "csv" else None)
    return profilers[-1].finish()


def _assert_same(local: dict[str, Any], other: dict[str, Any]) -> None:
    """Equal but for float rounding of mean and std, and the sketched parts' own draws."""
    assert local["rows"] == other["rows"]
    assert local["columns"].keys() == other["columns"].keys()
    for name, column in local["columns"].items():
        theirs = other["columns"][name]
        assert column.keys() == theirs.keys(), name
        sketched = column.get("sketched", {})
        for key, value in column.items():
            if key in _FLOAT_KEYS and value is not None:
                assert theirs[key] == pytest.approx(value, rel=1e-12), (name, key)
            elif key == "sketched":
                for part, note in value.items():  # the same method, bound and note
                    assert theirs[key][part]["method"] == note["method"], (name, part)
            elif key not in sketched and not (key == "quantiles" and "quantiles" in sketched):
                assert theirs[key] == value, (name, key)


def _assert_within_bounds(table: pa.Table, column: dict[str, Any], name: str) -> None:
    """A sketched column's figures against the truth, within what its profile states."""
    sketched = column["sketched"]
    values = table.column(name).drop_null()
    if "quantiles" in sketched:
        data = np.sort(values.to_numpy())
        error = sketched["quantiles"]["rank_error"]
        for q, got in column["quantiles"].items():
            rank = np.searchsorted(data, got, side="right") / data.size
            assert abs(rank - float(q)) <= 3 * error, (name, q)  # 99 % bound: 3x never misses
    if "distinct" in sketched:
        truth = len(set(values.to_pylist()))
        bound = sketched["distinct"]["relative_error"]
        assert abs(column["distinct"] - truth) <= 2 * bound * truth, name
    if "top" in sketched:
        counts = Counter(values.to_pylist())
        error = sketched["top"]["count_error"]
        for top in column["top"]:
            assert counts[top["value"]] - error <= top["count"] <= counts[top["value"]], name


@pytest.fixture(scope="module")
def mixed() -> pa.Table:
    return _mixed(100_000)


# -- partial profiles merged (no Ray) -------------------------------------------------------


def test_partial_profiles_merged_in_order_give_the_profile_of_the_whole(mixed: pa.Table) -> None:
    whole = profile_table(mixed)
    merged = Profiler(mixed.schema, threads=1)
    for start in range(0, mixed.num_rows, 30_000):  # past exact in the merge, not in a part
        part = Profiler(mixed.schema, threads=1)
        part.add(mixed.slice(start, 30_000))
        part.close()
        merged.merge(pickle.loads(pickle.dumps(part)))  # as a worker sends it
    profile = merged.finish()

    _assert_same(whole, profile)
    columns = profile["columns"]
    assert {n for n, c in columns.items() if "sketched" in c} == {"id", "wide", "label", "when"}
    assert columns["id"]["distinct"] == 100_000  # counted exactly: each value new
    assert list(columns["id"]["sketched"]) == ["quantiles"]
    # HyperLogLog registers merge to those of one sketch fed everything: the same estimate.
    assert columns["label"]["distinct"] == whole["columns"]["label"]["distinct"]
    for name in ("wide", "label"):
        _assert_within_bounds(mixed, columns[name], name)


def test_a_profile_merged_with_an_empty_one_is_unchanged() -> None:
    table = pa.table({"x": [3.0, 1.0, None], "c": ["a", None, "b"]})
    empty = Profiler(table.schema, threads=1)
    filled = Profiler(table.schema, threads=1)
    filled.add(table)
    empty.merge(filled)
    empty.merge(Profiler(table.schema, threads=1))
    assert empty.finish() == profile_table(table)


def test_values_that_increase_only_within_each_part_are_not_counted_as_unique() -> None:
    schema = pa.schema([("id", pa.int64())])
    merged = Profiler(schema, threads=1)
    for part in (np.arange(50_000, 90_000), np.arange(0, 40_000)):  # the second starts lower
        profiler = Profiler(schema, threads=1)
        profiler.add(pa.table({"id": part}))
        merged.merge(profiler)
    column = merged.finish()["columns"]["id"]
    whole = profile_table(
        pa.table({"id": np.concatenate([np.arange(50_000, 90_000), np.arange(40_000)])})
    )
    assert column["distinct"] == whole["columns"]["id"]["distinct"]  # the same registers
    assert "distinct" in column["sketched"]  # an estimate, as the local engine says


# -- on Ray ----------------------------------------------------------------------------------


def test_a_parquet_file_profiled_on_ray_matches_the_local_profile(
    tmp_path: Path, mixed: pa.Table, ray_cluster: Any
) -> None:
    path = tmp_path / "mixed.parquet"
    # Counted exactly (the sketches merge as above): the profiles are equal but for rounding.
    pq.write_table(mixed.slice(0, 24_000), path, row_group_size=6_000)
    local = _local_profile(path, "parquet")

    head, rows, profile = profile_on_ray(path, "parquet", batch_rows=5_000)

    assert rows == 24_000 and head.num_rows == 1000
    assert head.column("id").to_pylist() == list(range(1000))  # the file's first rows
    assert not any("sketched" in c for c in profile["columns"].values())
    _assert_same(local, profile)


def test_data_add_on_ray_stores_the_local_version_of_a_csv_file(
    tmp_path: Path, ray_cluster: Any
) -> None:
    local_ws = Workspace(write_churn_project(tmp_path / "local"))
    ray_ws = Workspace(write_churn_project(tmp_path / "ray"))
    local = register_dataset(local_ws, "customers").version

    result = CliRunner().invoke(
        app, ["data", "add", "customers", "--engine", "ray", "--project", str(ray_ws.root)]
    )

    assert result.exit_code == 0, result.output
    on_ray = get_dataset(ray_ws, "customers")
    assert on_ray.content_hash == local.content_hash and on_ray.rows == local.rows == 400
    assert on_ray.snapshot_sha256 == local.snapshot_sha256 == local.content_hash
    assert on_ray.columns == local.columns
    _assert_same(local.profile, on_ray.profile)
    assert on_ray.profile["columns"]["email"]["redacted"]  # personal data kept out, as locally
    with ray_ws.store.transaction() as session:
        run = session.get(RunRecord, on_ray.run_id)
        assert run is not None and run.parameters["engine"] == "ray"


def test_a_ragged_csv_file_is_refused_on_ray_with_its_line(
    tmp_path: Path, ray_cluster: Any
) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    with pytest.raises(DataError, match=r"ragged\.csv:3: row has 3 fields, the header has 2"):
        profile_on_ray(path, "csv", delimiter=",")


@pytest.mark.slow
def test_a_csv_column_that_changes_type_later_is_widened_as_locally(
    tmp_path: Path, ray_cluster: Any
) -> None:
    rows = 2_000_000  # its first 16 MB integers, then a decimal: read again as float64
    path = tmp_path / "w.csv"
    path.write_text("x\n" + "\n".join(map(str, range(10**7, 10**7 + rows))) + "\n1.5\n")
    local = _local_profile(path, "csv")
    assert local["columns"]["x"]["type"] == "double"
    _, _, profile = profile_on_ray(path, "csv", delimiter=",", batch_rows=10_000)
    _assert_same(local, profile)
    assert profile["columns"]["x"]["type"] == local["columns"]["x"]["type"]


def test_json_lines_and_an_unknown_engine_are_refused(tmp_path: Path) -> None:
    ws = Workspace(write_churn_project(tmp_path))
    lines = tmp_path / "d.jsonl"
    lines.write_text('{"a": 1}\n')
    with pytest.raises(ParameterError, match=r"'engine' ray profiles CSV and Parquet files"):
        register_dataset(ws, "d", lines, engine="ray")
    with pytest.raises(ParameterError, match=r"'engine' must be local or ray; got 'spark'"):
        register_dataset(ws, "d", lines, engine="spark")  # type: ignore[arg-type]


def test_without_ray_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace(write_churn_project(tmp_path))
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'mlplan\[ray\]'"):
        register_dataset(ws, "customers", engine="ray")
