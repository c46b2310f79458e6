"""The columnar copy of a version's table: the table parsing the snapshot gives, read back
memory-mapped by ``load_table``; a cache that is rebuilt when it cannot be trusted, skipped when
it cannot be written (``mlplan gc`` removing those whose snapshot is gone: tests/workspace)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import edit_plan

from mlplan.data import DatasetVersionInfo, load_table, read_table, register_dataset
from mlplan.errors import DataError
from mlplan.workspace import Workspace


def _quoted(rng: np.random.Generator) -> str:
    """Free text as a CRM export quotes it: delimiters, doubled quotes and line breaks inside
    quotes, beside plain numbers."""
    notes = ["called, no answer", 'said ""later""', "line one\nline two", "", "ok"]
    lines = ["id,note,charges"]
    for i in range(300):
        note = notes[int(rng.integers(len(notes)))]
        lines.append(f'{i},"{note}",{rng.normal(60, 15):.2f}')
    return "\n".join(lines) + "\n"


def _decimal_comma(rng: np.random.Generator) -> str:
    """A European spreadsheet's export: semicolons between fields, decimal commas."""
    lines = ["kunde;tarif;betrag"]
    for i in range(300):
        amount = f"{rng.normal(60, 15):.2f}".replace(".", ",")
        lines.append(f"{i};{rng.choice(['basis', 'plus'])};{amount}")
    return "\n".join(lines) + "\n"


def _semicolon(rng: np.random.Generator) -> str:
    """Semicolons between fields, commas inside unquoted text."""
    lines = ["id;city;score"]
    for i in range(300):
        lines.append(f"{i};{rng.choice(['Paris, FR', 'Lyon, FR'])};{rng.random():.4f}")
    return "\n".join(lines) + "\n"


def _missing_dates_integers(rng: np.random.Generator) -> str:
    """Quoted empty strings beside missing values (NA, nothing), dates, integers past 2**53 and
    up to int64's largest, and a column no row fills; 2 MB, so parsed in several blocks."""
    lines = ["id,comment,signed_up,account,unused"]
    for i in range(40_000):
        comment = ['""', "", "NA", "fine"][i % 4]
        day = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
        account = [9_007_199_254_740_993 + i, 2**63 - 1 - i][i % 2]
        lines.append(f"{i},{comment},{day},{account},")
    return "\n".join(lines) + "\n"


def _jsonl(rng: np.random.Generator) -> str:
    """JSON lines with a list field, and a field that starts missing, then empty or text."""
    rows = [
        f'{{"id": {i}, "tags": ["a", "b"], "score": {rng.random():.3f}'
        + (f', "late": "{"x" * (i % 2)}"}}' if i > 200 else "}")
        for i in range(300)
    ]
    return "\n".join(rows) + "\n"


SHAPES = {
    "quoted": (_quoted, "data.csv"),
    "decimal-comma": (_decimal_comma, "data.csv"),
    "semicolon": (_semicolon, "data.csv"),
    "missing-dates-integers": (_missing_dates_integers, "data.csv"),
    "jsonl": (_jsonl, "data.jsonl"),
}


def _registered(
    ws: Workspace, tmp_path: Path, text: str, name: str = "data.csv"
) -> DatasetVersionInfo:
    """``text`` registered as ``crm``, a dataset the plan names without a target."""
    edit_plan(
        ws,
        "\n\n# ── Labels",
        "\n  crm:\n    path: data/crm.csv\n    role: unlabeled\n    pii_columns: []\n\n# ── Labels",
    )
    path = tmp_path / "incoming" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return register_dataset(ws, "crm", path).version


def _copies(ws: Workspace) -> list[Path]:
    return [f.path for f in ws.store.artifacts.table_copies() if f.sha256 is not None]


def _mapped_from(table: pa.Table, path: Path) -> bool:
    """Whether every value buffer of ``table`` lies in a memory map of the file ``path``."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps to tell memory maps by")
    ranges = []
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == str(path):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    buffers = [
        b for column in table.columns for chunk in column.chunks for b in chunk.buffers() if b
    ]
    return bool(buffers) and all(
        any(start <= b.address < end for start, end in ranges) for b in buffers
    )


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_copy_gives_the_table_parsing_the_snapshot_gives_without_a_parse(
    sqlite_ws: Workspace, tmp_path: Path, rng: np.random.Generator, shape: str
) -> None:
    make, name = SHAPES[shape]
    info = _registered(sqlite_ws, tmp_path, make(rng), name)
    assert info.snapshot_sha256 is not None
    snapshot = sqlite_ws.store.artifacts.path(info.snapshot_sha256)
    parsed = read_table(
        snapshot, info.format, delimiter=info.delimiter, decimal=info.decimal or "."
    )

    first = load_table(sqlite_ws, info)
    (copy,) = _copies(sqlite_ws)
    assert not _mapped_from(first, copy)  # parsed, then written
    again = load_table(sqlite_ws, info)
    assert _mapped_from(again, copy)  # read from the copy: no parse, nothing on the heap
    for table in (first, again):
        assert table.schema.equals(parsed.schema, check_metadata=True)
        assert table.equals(parsed)
        assert table.to_pylist() == parsed.to_pylist()  # "" and None told apart, in order


def test_without_its_snapshot_the_copy_is_not_used(
    sqlite_ws: Workspace, tmp_path: Path, rng: np.random.Generator
) -> None:
    info = _registered(sqlite_ws, tmp_path, _quoted(rng))
    load_table(sqlite_ws, info)
    assert info.snapshot_sha256 is not None and _copies(sqlite_ws)
    sqlite_ws.store.artifacts.path(info.snapshot_sha256).unlink()
    (tmp_path / "incoming" / "data.csv").write_text("id,note,charges\n1,changed,2.0\n")
    with pytest.raises(DataError, match=r"the data of crm@1 is not at hand: no snapshot"):
        load_table(sqlite_ws, info)


@pytest.mark.parametrize("damage", ["cut short", "not arrow", "another table"])
def test_a_copy_that_cannot_be_trusted_is_made_again(
    sqlite_ws: Workspace, tmp_path: Path, rng: np.random.Generator, damage: str
) -> None:
    info = _registered(sqlite_ws, tmp_path, _missing_dates_integers(rng))
    expected = load_table(sqlite_ws, info)
    (copy,) = _copies(sqlite_ws)
    whole = copy.read_bytes()
    if damage == "cut short":
        bad = whole[: len(whole) // 2]
    elif damage == "not arrow":
        bad = b"id,comment\n" * 100
    else:
        sink = pa.BufferOutputStream()
        other = pa.table({"id": [1, 2]})
        with pa.ipc.new_file(sink, other.schema) as writer:
            writer.write_table(other)
        bad = sink.getvalue().to_pybytes()
    replaced = copy.with_name(".damaged")
    replaced.write_bytes(bad)
    replaced.replace(copy)

    assert load_table(sqlite_ws, info).equals(expected)
    assert copy.read_bytes() == whole  # written again
    again = load_table(sqlite_ws, info)
    assert again.equals(expected) and _mapped_from(again, copy)


def test_a_copy_that_cannot_be_written_is_skipped(
    sqlite_ws: Workspace, tmp_path: Path, rng: np.random.Generator
) -> None:
    """A cache folder that cannot be made (a file where it goes: unwritable even for root,
    as a read-only or full disk is) leaves the load to parse the snapshot every time."""
    info = _registered(sqlite_ws, tmp_path, _semicolon(rng))
    sqlite_ws.store.artifacts.tables.write_bytes(b"")
    table = load_table(sqlite_ws, info)
    assert table.equals(load_table(sqlite_ws, info)) and table.num_rows == 300
    assert _copies(sqlite_ws) == []


def test_a_copy_another_arrow_made_is_not_read(
    sqlite_ws: Workspace, tmp_path: Path, rng: np.random.Generator
) -> None:
    """The copy is named by the Arrow that parsed it: a teammate's or an older Arrow may
    infer other types, so its copy is left alone and this one parses and writes its own."""
    info = _registered(sqlite_ws, tmp_path, _quoted(rng))
    expected = load_table(sqlite_ws, info)
    (copy,) = _copies(sqlite_ws)
    major, minor = pa.__version__.split(".")[:2]
    assert copy.name.endswith(f"-pa{major}-{minor}.r1.arrow")
    other = copy.with_name(copy.name.replace(f"-pa{major}-{minor}.", "-pa1-0."))
    copy.rename(other)
    again = load_table(sqlite_ws, info)
    assert again.equals(expected) and sorted(_copies(sqlite_ws)) == sorted([copy, other])


def test_a_copy_an_older_reader_made_is_replaced(
    sqlite_ws: Workspace, tmp_path: Path, rng: np.random.Generator
) -> None:
    info = _registered(sqlite_ws, tmp_path, _quoted(rng))
    load_table(sqlite_ws, info)
    (copy,) = _copies(sqlite_ws)
    older = copy.with_name(copy.name.replace(".r1.", ".r0."))
    copy.rename(older)
    load_table(sqlite_ws, info)
    assert _copies(sqlite_ws) == [copy]
