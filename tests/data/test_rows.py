"""``data rows``: the rows of one part of a split written out (CSV or Parquet by suffix), each
with its row number in the version, PII left out unless asked for, recorded as a run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from tests.conftest import customers_table, ok

from mlplan.data import export_rows, get_split, load_split
from mlplan.errors import ParameterError, SplitNotFoundError
from mlplan.lineage import lineage
from mlplan.store import RunRecord
from mlplan.workspace import Workspace


def _runs(ws: Workspace) -> int:
    with ws.store.transaction() as session:
        return len(session.scalars(ws.select(RunRecord)).all())


@pytest.mark.parametrize("part", ["train", "valid", "test"])
def test_the_rows_of_a_part_are_written_in_order_without_pii(
    split_ws: Workspace, tmp_path: Path, part: str
) -> None:
    out = tmp_path / f"{part}.parquet"

    found = export_rows(split_ws, "customers@1/s1", part=part, out=out)  # type: ignore[arg-type]

    written = pq.read_table(out)
    codes = load_split(split_ws, get_split(split_ws, "customers@1/s1")).codes
    expected_rows = np.flatnonzero(codes == ["train", "valid", "test"].index(part))
    assert written["mlplan_row"].to_pylist() == expected_rows.tolist()
    source = customers_table()
    assert written.column_names == [
        "mlplan_row",
        *[c for c in source.column_names if c not in {"name", "email"}],
    ]
    assert (
        written["customer_id"].to_pylist() == source["customer_id"].take(expected_rows).to_pylist()
    )
    assert (found.rows, found.left_out, found.split) == (
        len(expected_rows),
        ["name", "email"],
        "customers@1/s1",
    )
    assert found.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()


def test_the_export_is_a_run_from_the_split_to_the_file(
    split_ws: Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "test.csv"

    found = export_rows(split_ws, "customers/s1", out=out, include_pii=True)

    table = pcsv.read_csv(out)
    assert "email" in table.column_names and found.left_out == []
    graph = lineage(split_ws, str(out))
    run = graph.producer_of(graph.subject.ref)
    assert run is not None and (run.job, run.id) == ("data rows", found.run_id)
    assert {n.ref for n in run.inputs} == {"customers@1/s1", "customers@1"}
    assert graph.subject.sha256 == found.sha256
    assert run.parameters == {
        "split": "customers@1/s1",
        "part": "test",
        "include_pii": True,
        "format": "csv",
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"out": "rows.xlsx"}, ParameterError, r"^'out' rows\.xlsx must end in \.csv or \.parquet"),
        (
            {"out": "rows.csv", "part": "holdout"},
            ParameterError,
            r"^'part' must be train, valid or test",
        ),
        ({"out": "."}, ParameterError, r"is a folder; give the file to write"),
    ],
    ids=["suffix", "part", "folder"],
)
def test_bad_arguments_are_refused_and_nothing_is_written(
    split_ws: Workspace,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    here = tmp_path / "exports"
    here.mkdir()
    monkeypatch.chdir(here)
    before = _runs(split_ws)
    with pytest.raises(error, match=message):
        export_rows(split_ws, "customers@1/s1", **kwargs)
    assert _runs(split_ws) == before and list(here.iterdir()) == []


def test_an_unknown_split_names_the_known_ones(split_ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(
        SplitNotFoundError, match=r"'customers@1/s9' not found; known: customers@1/s1"
    ):
        export_rows(split_ws, "customers@1/s9", out=tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_cli_data_rows(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))
    ok(cli("data", "split", "customers", "--seed", "1"))

    answer = json.loads(
        ok(
            cli("data", "rows", "customers@1/s1", "--part", "valid", "--out", "v.csv", "--json")
        ).stdout
    )

    assert answer["rows"] == pcsv.read_csv(project_dir / "v.csv").num_rows > 0
    assert answer["left_out"] == ["name", "email"] and answer["file"] == "v.csv"
    text = ok(cli("data", "rows", "customers@1/s1", "--out", "t.parquet")).stdout
    assert "test rows of customers@1/s1" in text and "Left out the PII columns name, email" in text
    bad = cli("data", "rows", "customers@1/s1", "--out", "t.json")
    assert bad.exit_code == 2 and "error: --out t.json must end in .csv or .parquet" in bad.stderr
    missing = cli("data", "rows", "customers@1/s1")
    assert missing.exit_code == 2 and "--out" in missing.stderr
