"""Reading a file of predictions made elsewhere (the older system, another team's model): every
row read as written, or the file refused with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplan.errors import DataError
from mlplan.modeling import read_predictions


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "item_id,prediction\n1,yes\n2,no,0.3\n3,yes\n",
            r"rules\.csv:3: row has 3 fields, the header has 2\. Fix the file",
        ),
        (
            'item_id,prediction\n1,yes\n2,"no\n3,yes\n4,no\n',
            r"rules\.csv:3: a quote opened on this line is never closed",
        ),
    ],
    ids=["ragged-row", "quote-never-closed"],
)
def test_a_malformed_predictions_file_is_refused_with_its_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_predictions(path)


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolon", "tab"])
def test_predictions_split_on_another_delimiter_are_read(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(
        "\n".join(delimiter.join(r) for r in [("item_id", "prediction"), ("1", "a, b"), ("2", "c")])
        + "\n"
    )
    table = read_predictions(path)
    assert table.column("prediction").to_pylist() == ["a, b", "c"]


def test_a_stored_copy_without_a_suffix_is_split_as_the_file_was(tmp_path: Path) -> None:
    # The store keeps the file under its hash: a TSV's copy used to be split on commas.
    stored = tmp_path / "9f2c"
    stored.write_text("item_id\tprediction\n1\tyes, surely\n2\tno\n")
    assert read_predictions(stored).column_names == ["item_id", "prediction"]
