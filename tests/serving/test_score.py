from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from tests.conftest import chdir, customers_table, long_tail_table, table_project
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.errors import DataError, ParameterError, UsageError
from mlplan.lineage import lineage
from mlplan.modeling import train_model
from mlplan.serving import load_served_model, score_file
from mlplan.store import sha256_file
from mlplan.workspace import Workspace


def _damage_row_group(source: Path, index: int) -> None:
    """Overwrite the first page header of the file's row group ``index`` (from 0)."""
    column = pq.ParquetFile(source).metadata.row_group(index).column(0)
    start = column.dictionary_page_offset or column.data_page_offset
    data = bytearray(source.read_bytes())
    data[start : start + 64] = b"\xff" * 64
    source.write_bytes(bytes(data))


def _input(tmp_path: Path, rows: int = 5000) -> Path:
    table = customers_table(rows=rows, seed=11).drop_columns(["churned"])
    path = tmp_path / "to_score.parquet"
    pq.write_table(table, path)
    return path


def test_scoring_a_file_matches_the_server_model_row_for_row(
    served: Workspace, tmp_path: Path
) -> None:
    source = _input(tmp_path)
    report = score_file(served, "logistic-1", source, tmp_path / "out.parquet", chunk_rows=700)
    out = pq.read_table(tmp_path / "out.parquet")
    assert report.rows == out.num_rows == 5000
    assert out.column_names == [
        "customer_id", "prediction", "p_0", "p_1", "model", "version", "error",
    ]  # fmt: skip
    assert out.column("customer_id").to_pylist()[:3] == ["1", "2", "3"]
    model = load_served_model(served, "logistic-1")
    assert set(out.column("version").to_pylist()) == {model.version}
    # The chunks give exactly what one call on the whole file gives.
    table = pq.read_table(source)
    feeds = {
        "age": table.column("age").to_numpy().astype(np.float32).reshape(-1, 1),
        "charges": np.asarray(table.column("charges").to_pandas(), dtype=np.float32).reshape(-1, 1),
        "gender": np.asarray(
            [v or "" for v in table.column("gender").to_pylist()], dtype=object
        ).reshape(-1, 1),
        "region": np.asarray(table.column("region").to_pylist(), dtype=object).reshape(-1, 1),
    }
    labels, proba = model.run(feeds)
    assert proba is not None
    assert np.allclose(out.column("p_1").to_numpy(), proba[:, 1])
    # Class indices (what batch scoring writes from) name the same classes, with the
    # recorded threshold and without it.
    for threshold in (model.threshold, None, 0.3):
        model.threshold = threshold
        codes, _ = model.run_coded(feeds)
        assert np.asarray(model.classes)[codes].tolist() == model.run(feeds)[0].tolist()
    assert out.column("prediction").to_pylist() == labels.tolist()
    assert out.column("error").null_count == 5000
    graph = lineage(served, report.output)
    assert ("model", "logistic-1@1") in {(n.kind, n.ref) for r in graph.upstream for n in r.inputs}
    # The digests recorded (the output's hashed as it was written) are the files' own.
    files = {n.ref: n.sha256 for r in graph.upstream for n in (*r.inputs, *r.outputs)}
    assert files[report.input] == sha256_file(source).sha256
    assert files[report.output] == sha256_file(tmp_path / "out.parquet").sha256


def test_rows_that_break_the_signature_say_why_and_csv_works_too(
    served: Workspace, tmp_path: Path
) -> None:
    table = pa.table(
        {
            "customer_id": [1, 2, 3],
            "gender": ["female", "female", "male"],
            "age": pa.array([30, None, 40]),
            "region": ["north", "mars", "south"],
            "charges": [50.0, 60.0, None],
        }
    )
    source = tmp_path / "few.csv"
    pcsv.write_csv(table, source)
    report = score_file(served, "logistic-1", source, tmp_path / "few-out.csv")
    out = pcsv.read_csv(
        tmp_path / "few-out.csv", convert_options=pcsv.ConvertOptions(strings_can_be_null=True)
    )
    assert (report.rows, report.scored, report.refused) == (3, 2, 1)
    errors = out.column("error").to_pylist()
    assert errors[0] is None and errors[2] is None
    assert errors[1] == "age: missing; region: unseen category"
    assert out.column("prediction").to_pylist()[1] is None


def _customers_text(rows: int, delimiter: str = ",") -> list[str]:
    """Customers to score as a hand-made export writes them: no quotes."""
    table = customers_table(rows=rows, seed=5).drop_columns(["churned", "name", "email"])
    lines = [delimiter.join(table.column_names)]
    for row in table.to_pylist():
        lines.append(delimiter.join("" if v is None else str(v) for v in row.values()))
    return lines


def test_a_semicolon_csv_is_scored_on_its_columns(served: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "to_score.csv"
    source.write_text("\n".join(_customers_text(50, ";")) + "\n")
    report = score_file(served, "logistic-1", source, tmp_path / "out.parquet")
    assert (report.rows, report.scored) == (50, 50)


def test_decimal_commas_are_scored_as_numbers(served: Workspace, tmp_path: Path) -> None:
    # A European export: before, charges (60,25) were text and the file was refused.
    header, *rows = _customers_text(50, ";")
    source = tmp_path / "to_score.csv"
    source.write_text("\n".join([header, *(r.replace(".", ",") for r in rows)]) + "\n")
    report = score_file(served, "logistic-1", source, tmp_path / "out.parquet")
    assert (report.rows, report.scored) == (50, 50)


@pytest.mark.parametrize(
    ("line", "broken", "message"),
    [
        (101, lambda text: text + ",extra", r"to_score\.csv:101: row has 6 fields, the header "),
        (150_001, lambda text: text + ",extra", r"to_score\.csv:150001: row has 6 fields"),
        # Past the first block, these were an internal error (pyarrow's own), with no line.
        (180_001, lambda text: text.replace(",", ',"', 1), r"to_score\.csv:180001: a quote opened"),
        (101, lambda text: text.replace(",", ',"', 1), r"to_score\.csv:101: a quote opened on "),
    ],
    ids=["ragged-row-early", "ragged-row-late", "quote-never-closed-late", "quote-early"],
)
def test_a_broken_csv_is_refused_with_its_line_and_nothing_is_written(
    served: Workspace, tmp_path: Path, line: int, broken: Any, message: str
) -> None:
    lines = _customers_text(200_000)
    lines[line - 1] = broken(lines[line - 1])
    source = tmp_path / "to_score.csv"
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        score_file(served, "logistic-1", source, tmp_path / "out.parquet", chunk_rows=50_000)
    assert not (tmp_path / "out.parquet").exists()


def test_bad_files_are_refused_and_nothing_is_written(served: Workspace, tmp_path: Path) -> None:
    table = pa.table({"customer_id": [1], "age": ["old"], "region": ["north"], "charges": [1.0]})
    source = tmp_path / "bad.parquet"
    pq.write_table(table, source)
    with pytest.raises(DataError, match=r"missing column\(s\) gender; the model takes"):
        score_file(served, "logistic-1", source, tmp_path / "o.parquet")
    pq.write_table(table.append_column("gender", pa.array(["female"])), source)
    with pytest.raises(DataError, match=r"column 'age' holds string values; the model expects"):
        score_file(served, "logistic-1", source, tmp_path / "o.parquet")
    with pytest.raises(UsageError, match=r"\.parquet or \.csv files; got '\.xlsx'"):
        score_file(served, "logistic-1", source, tmp_path / "o.xlsx")
    with pytest.raises(ParameterError, match=r"^'engine' must be local or ray; got 'spark'$"):
        score_file(served, "logistic-1", source, tmp_path / "o.csv", engine="spark")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"^'chunk_rows' must be 1 or more; got 0$"):
        score_file(served, "logistic-1", source, tmp_path / "o.csv", chunk_rows=0)
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))


def test_row_groups_of_any_size_score_alike_in_chunks_of_at_most_chunk_rows(
    served: Workspace, tmp_path: Path
) -> None:
    table = customers_table(rows=5000, seed=11).drop_columns(["churned"])
    outputs = []
    for row_group_size in (5000, 333, 7):  # one group; groups below a chunk; tiny groups
        source = tmp_path / f"in-{row_group_size}.parquet"
        pq.write_table(table, source, row_group_size=row_group_size)
        target = tmp_path / f"out-{row_group_size}.parquet"
        report = score_file(served, "logistic-1", source, target, chunk_rows=700)
        assert report.rows == 5000
        written = pq.ParquetFile(target)  # one row group per scored batch
        sizes = [written.metadata.row_group(i).num_rows for i in range(written.num_row_groups)]
        assert max(sizes) <= 700
        # Small row groups are read together: 715 groups of 7 rows make 8 batches, not 715.
        assert len(sizes) <= 2 * -(-5000 // 700)
        outputs.append(pq.read_table(target))
    assert outputs[0].equals(outputs[1]) and outputs[0].equals(outputs[2])


def test_a_csv_file_of_several_blocks_scores_as_its_parquet_twin_in_chunks(
    served: Workspace, tmp_path: Path
) -> None:
    # 40,000 rows: about 2.5 MB, three of the CSV reader's 1 MB blocks, rejoined into
    # chunks of 7,000 rows that straddle the blocks.
    table = customers_table(rows=40_000, seed=5).drop_columns(["churned"])
    pq.write_table(table, tmp_path / "in.parquet")
    pcsv.write_csv(table, tmp_path / "in.csv")
    assert (tmp_path / "in.csv").stat().st_size > 2 << 20
    for suffix in ("parquet", "csv"):
        report = score_file(
            served, "logistic-1", tmp_path / f"in.{suffix}", tmp_path / f"out-{suffix}.parquet",
            chunk_rows=7_000,
        )  # fmt: skip
        assert report.rows == 40_000
    from_csv = pq.ParquetFile(tmp_path / "out-csv.parquet")
    sizes = [from_csv.metadata.row_group(i).num_rows for i in range(from_csv.num_row_groups)]
    assert sizes == [7_000] * 5 + [5_000]
    twin = pq.read_table(tmp_path / "out-parquet.parquet")
    scored = from_csv.read()
    assert scored.column("customer_id").equals(twin.column("customer_id"))
    assert np.allclose(scored.column("p_1").to_numpy(), twin.column("p_1").to_numpy())


def test_a_damaged_row_group_is_refused_naming_it_and_nothing_is_written(
    served: Workspace, tmp_path: Path
) -> None:
    source = tmp_path / "damaged.parquet"
    pq.write_table(
        customers_table(rows=4000, seed=11).drop_columns(["churned"]), source, row_group_size=1000
    )
    _damage_row_group(source, 2)
    with pytest.raises(
        DataError, match=r"damaged\.parquet: cannot be read as parquet: row group 3"
    ):
        score_file(served, "logistic-1", source, tmp_path / "out.parquet", chunk_rows=1000)
    assert not list(tmp_path.glob("*out.parquet*"))


def test_score_from_the_command_line(served: Workspace, tmp_path: Path) -> None:
    source = _input(tmp_path, rows=300)
    with chdir(served.root):
        result = CliRunner().invoke(
            app, ["score", "logistic-1", str(source), "scored.csv", "--json"]
        )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["rows"], report["engine"]) == (300, "local")
    assert (served.root / "scored.csv").exists()


@pytest.mark.slow
def test_scoring_on_ray_data_gives_the_same_file(
    served: Workspace, tmp_path: Path, ray_cluster: Any
) -> None:
    # Row groups of uneven sizes (300, 300, 300, 100, ...), read by several Ray tasks of 800
    # rows or more: Ray Data's own reader packs uneven groups by size, out of the file's order.
    table = pq.read_table(_input(tmp_path, rows=3000))
    source = tmp_path / "uneven.parquet"
    with pq.ParquetWriter(source, table.schema) as writer:
        for start in range(0, 3000, 1000):
            writer.write_table(table.slice(start, 1000), row_group_size=300)
    score_file(served, "logistic-1", source, tmp_path / "local.parquet", chunk_rows=100)
    report = score_file(
        served, "logistic-1", source, tmp_path / "ray.parquet", engine="ray", chunk_rows=100
    )
    assert report.engine == "ray" and report.rows == 3000
    local = pq.read_table(tmp_path / "local.parquet")
    on_ray = pq.read_table(tmp_path / "ray.parquet")
    assert on_ray.column_names == local.column_names
    assert on_ray.column("customer_id").to_pylist() == local.column("customer_id").to_pylist()
    assert np.allclose(on_ray.column("p_1").to_numpy(), local.column("p_1").to_numpy())

    # A damaged row group, read on a Ray worker, is refused as the local engine refuses it.
    _damage_row_group(source, 4)
    with pytest.raises(DataError, match=r"uneven\.parquet: cannot be read as parquet: row gr"):
        score_file(
            served, "logistic-1", source, tmp_path / "bad.parquet", engine="ray", chunk_rows=100
        )
    assert not list(tmp_path.glob("*bad.parquet*"))


def test_a_rare_category_scores_as_its_bucket_and_an_unseen_one_follows_the_plan(
    tmp_path: Path,
) -> None:
    ws = table_project(tmp_path / "payments", long_tail_table(), target="fraud")
    model = train_model(ws, family="logistic")
    rare = model.features["infrequent"]["merchant"]
    source = tmp_path / "payments.csv"
    pcsv.write_csv(
        pa.table(
            {
                "merchant": [rare[0], rare[-1], "never-seen", "online"],
                "channel": ["card"] * 4,
                "amount": [40.0] * 4,
            }
        ),
        source,
    )
    report = score_file(ws, model.name, source, tmp_path / "scored.csv")
    out = pcsv.read_csv(
        tmp_path / "scored.csv", convert_options=pcsv.ConvertOptions(strings_can_be_null=True)
    )
    # Rare merchants were seen in training: accepted, and scored as one; a merchant never
    # seen is refused, as the plan's deployment.security.unseen_categories says.
    assert (report.scored, report.refused) == (3, 1)
    assert out.column("error").to_pylist() == [None, None, "merchant: unseen category", None]
    p_1 = out.column("p_1").to_pylist()
    assert p_1[0] == p_1[1] != p_1[3]
