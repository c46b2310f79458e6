"""profile_table: the per-column profile agrees with pandas on the same data."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplan.data import QUANTILES, Profiler, column_kind, profile_table


def _expected_numeric(series: pd.Series) -> dict[str, Any]:
    """What pandas says about a numeric column (NaN and null both missing)."""
    values = series.astype("float64")
    return {
        "count": int(values.count()),
        "missing": int(values.isna().sum()),
        "distinct": int(values.nunique()),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)),
        "min": float(values.min()),
        "max": float(values.max()),
        "quantiles": {str(q): float(values.quantile(q)) for q in QUANTILES},
    }


def _top(series: pd.Series) -> list[dict[str, Any]]:
    counts = series.dropna().value_counts()
    pairs = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return [{"value": value, "count": int(count)} for value, count in pairs]


NUMERIC_COLUMNS = {
    "floats with NaN and null": pa.array(
        [1.5, None, 3.25, float("nan"), -2.0, 10.0, 3.25, 7.125, None, 0.0], pa.float64()
    ),
    "ints with nulls": pa.array([5, 3, None, 3, 9, 1, None, 12, 3, 8, 2], pa.int64()),
    "float32": pa.array([0.5, 0.25, None, 4.0, 4.0], pa.float32()),
    "uint8": pa.array([200, 3, 3, 255, 0], pa.uint8()),
    "two values": pa.array([1, 2], pa.int16()),
}


@pytest.mark.parametrize("array", NUMERIC_COLUMNS.values(), ids=NUMERIC_COLUMNS.keys())
def test_numeric_profile_equals_pandas(array: pa.Array) -> None:
    column = profile_table(pa.table({"x": array}))["columns"]["x"]
    expected = _expected_numeric(pa.table({"x": array}).to_pandas()["x"])

    assert column["kind"] == "numeric"
    assert column["count"] == expected["count"]
    assert column["missing"] == expected["missing"]
    assert column["missing_ratio"] == pytest.approx(expected["missing"] / len(array))
    assert column["distinct"] == expected["distinct"]
    for key in ("mean", "std", "min", "max"):
        assert column[key] == pytest.approx(expected[key], rel=1e-12), key
    assert column["quantiles"] == pytest.approx(expected["quantiles"], rel=1e-12)


def test_numeric_profile_of_random_data_equals_pandas(rng: np.random.Generator) -> None:
    values = rng.normal(50, 20, 5_000)
    mask = rng.random(5_000) < 0.1
    array = pa.array(values, mask=mask)
    column = profile_table(pa.table({"x": array}))["columns"]["x"]
    expected = _expected_numeric(pd.Series(np.where(mask, np.nan, values)))

    for key in ("count", "missing", "distinct"):
        assert column[key] == expected[key], key
    for key in ("mean", "std", "min", "max"):
        assert column[key] == pytest.approx(expected[key], rel=1e-12), key
    assert column["quantiles"] == pytest.approx(expected["quantiles"], rel=1e-12)
    assert "top" not in column  # many distinct values: no top list for numbers


def test_numeric_top_values_are_ordered_by_count_then_value() -> None:
    column = profile_table(pa.table({"x": [3, 1, 2, 3, 1, 9, None]}))["columns"]["x"]
    assert column["top"] == [
        {"value": 1, "count": 2},
        {"value": 3, "count": 2},
        {"value": 2, "count": 1},
        {"value": 9, "count": 1},
    ]


def test_numeric_single_value_has_no_std() -> None:
    column = profile_table(pa.table({"x": [4.0, None]}))["columns"]["x"]
    assert (column["count"], column["mean"], column["std"]) == (1, 4.0, None)
    assert set(column["quantiles"].values()) == {4.0}


def test_string_profile_equals_pandas() -> None:
    values = ["b", "a", None, "c", "b", "", "a", "b", None, "dd"]
    column = profile_table(pa.table({"s": values}))["columns"]["s"]
    series = pd.Series(values, dtype="object")

    assert column["kind"] == "categorical"
    assert column["count"] == series.count() == 8
    assert column["missing"] == series.isna().sum() == 2
    assert column["distinct"] == series.nunique() == 5
    assert column["top"] == _top(series)
    assert column["top"][:2] == [{"value": "b", "count": 3}, {"value": "a", "count": 2}]
    lengths = series.dropna().str.len()
    assert column["length"] == {
        "min": lengths.min(),
        "max": lengths.max(),
        "mean": pytest.approx(lengths.mean()),
    }


def test_top_values_break_ties_by_value() -> None:
    column = profile_table(pa.table({"s": ["z", "m", "a", "m", "z", "a", "q"]}))["columns"]["s"]
    assert [t["value"] for t in column["top"]] == ["a", "m", "z", "q"]


def test_top_values_keep_the_ten_most_frequent() -> None:
    values = [f"v{i:02d}" for i in range(15) for _ in range(i + 1)]
    column = profile_table(pa.table({"s": values}))["columns"]["s"]
    assert [t["value"] for t in column["top"]] == [f"v{i:02d}" for i in range(14, 4, -1)]


def test_dictionary_encoded_strings_profile_like_plain_strings() -> None:
    # Two chunks with different dictionaries, as a Parquet file with two row groups gives.
    chunks = [["b", "a", "b", None], ["c", None, "a", "a"]]
    encoded = pa.chunked_array([pa.array(c).dictionary_encode() for c in chunks])
    plain = pa.chunked_array([pa.array(c) for c in chunks])

    got = profile_table(pa.table({"s": encoded}))["columns"]["s"]
    want = profile_table(pa.table({"s": plain}))["columns"]["s"]

    assert got.pop("type").startswith("dictionary<values=string")
    assert want.pop("type") == "string"
    assert got == want
    assert got["top"] == [
        {"value": "a", "count": 3},
        {"value": "b", "count": 2},
        {"value": "c", "count": 1},
    ]


def test_boolean_profile_equals_pandas() -> None:
    values = [True, False, None, True, True, None]
    column = profile_table(pa.table({"b": values}))["columns"]["b"]
    series = pd.Series(values, dtype="boolean")

    assert column["kind"] == "boolean"
    assert (column["count"], column["missing"], column["distinct"]) == (4, 2, 2)
    assert column["count"] == series.count()
    assert column["mean"] == pytest.approx(float(series.mean()))
    assert column["top"] == [{"value": True, "count": 3}, {"value": False, "count": 1}]


def test_date_profile_gives_extremes_and_distinct() -> None:
    values = [dt.date(2025, 3, 1), None, dt.date(2024, 12, 31), dt.date(2025, 3, 1)]
    column = profile_table(pa.table({"d": values}))["columns"]["d"]
    assert column["kind"] == "datetime"
    assert (column["count"], column["missing"], column["distinct"]) == (3, 1, 2)
    assert (column["min"], column["max"]) == ("2024-12-31", "2025-03-01")


EMPTY_COLUMNS = {
    "all-null float": pa.array([None, None, None], pa.float64()),
    "all-NaN float": pa.array([float("nan")] * 3, pa.float64()),
    "all-null int": pa.array([None, None, None], pa.int64()),
    "all-null string": pa.array([None, None, None], pa.string()),
    "all-null bool": pa.array([None, None, None], pa.bool_()),
    "all-null date": pa.array([None, None, None], pa.date32()),
    "null type": pa.array([None, None, None], pa.null()),
}


@pytest.mark.parametrize("array", EMPTY_COLUMNS.values(), ids=EMPTY_COLUMNS.keys())
def test_all_missing_columns_have_counts_and_no_statistics(array: pa.Array) -> None:
    column = profile_table(pa.table({"x": array}))["columns"]["x"]
    assert (column["count"], column["missing"], column["missing_ratio"]) == (0, 3, 1.0)
    assert column["distinct"] in (0, None)
    for key in ("min", "max", "mean", "std"):
        assert column.get(key) is None, key
    assert all(v is None for v in column.get("quantiles", {}).values())
    assert column.get("top", []) == []


def test_table_without_rows_profiles_without_dividing_by_zero() -> None:
    table = pa.table({"x": pa.array([], pa.float64()), "s": pa.array([], pa.string())})
    profile = profile_table(table)
    assert profile["rows"] == 0
    assert [c["missing_ratio"] for c in profile["columns"].values()] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([f"free text comment number {i:04d}" for i in range(100)], "text"),
        ([f"short{i}" for i in range(100)], "categorical"),  # unique but short: codes, not text
        (["a long repeated sentence of many words"] * 100, "categorical"),  # long, not unique
    ],
    ids=["long-unique", "short-unique", "long-repeated"],
)
def test_text_is_told_from_categorical_by_length_and_uniqueness(
    values: list[str], kind: str
) -> None:
    assert profile_table(pa.table({"s": values}))["columns"]["s"]["kind"] == kind


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [
        (pa.int8(), "numeric"),
        (pa.float16(), "numeric"),
        (pa.decimal128(10, 2), "numeric"),
        (pa.bool_(), "boolean"),
        (pa.string(), "categorical"),
        (pa.large_string(), "categorical"),
        (pa.dictionary(pa.int8(), pa.string()), "categorical"),
        (pa.date32(), "datetime"),
        (pa.timestamp("us", tz="UTC"), "datetime"),
        (pa.list_(pa.int64()), "other"),
        (pa.binary(), "other"),
    ],
    ids=str,
)
def test_column_kind_of_arrow_types(dtype: pa.DataType, kind: str) -> None:
    assert column_kind(dtype) == kind


def test_decimal_columns_profile_as_numbers() -> None:
    from decimal import Decimal

    array = pa.array([Decimal("1.50"), Decimal("2.25"), None], pa.decimal128(6, 2))
    column = profile_table(pa.table({"x": array}))["columns"]["x"]
    assert (column["count"], column["mean"], column["min"], column["max"]) == (2, 1.875, 1.5, 2.25)


def test_profile_is_the_same_with_one_thread_or_many(rng: np.random.Generator) -> None:
    table = pa.table(
        {
            "a": rng.normal(size=300),
            "b": rng.integers(0, 5, 300),
            "c": rng.choice(["x", "y", "z"], 300),
            "d": rng.random(300) < 0.3,
        }
    )
    assert profile_table(table, threads=1) == profile_table(table, threads=4)


def test_profile_keeps_column_order_and_row_count() -> None:
    table = pa.table({"z": [1], "a": ["x"], "m": [True]})
    profile = profile_table(table)
    assert profile["rows"] == 1
    assert list(profile["columns"]) == ["z", "a", "m"]


# -- invariants ------------------------------------------------------------------------------

_floats = st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.just(float("nan")))


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.one_of(st.none(), _floats), max_size=60))
def test_numeric_profile_invariants_and_pandas_agreement(values: list[float | None]) -> None:
    array = pa.array(values, pa.float64())
    column = profile_table(pa.table({"x": array}))["columns"]["x"]
    rows = len(values)

    assert column["count"] + column["missing"] == rows
    assert column["distinct"] <= column["count"]
    if column["count"] == 0:
        return
    quantiles = [column["quantiles"][str(q)] for q in QUANTILES]
    assert column["min"] <= quantiles[0]
    assert all(a <= b for a, b in itertools.pairwise(quantiles))
    assert quantiles[-1] <= column["max"]

    expected = _expected_numeric(pd.Series(values, dtype="float64"))
    assert column["count"] == expected["count"]
    assert column["distinct"] == expected["distinct"]
    assert column["mean"] == pytest.approx(expected["mean"], rel=1e-9, abs=1e-6)
    assert column["quantiles"] == pytest.approx(expected["quantiles"], rel=1e-9, abs=1e-6)
    if column["count"] > 1:
        assert column["std"] == pytest.approx(expected["std"], rel=1e-6, abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "dé", ""])), max_size=60)
)
def test_categorical_profile_invariants(values: list[str | None]) -> None:
    column = profile_table(pa.table({"s": pa.array(values, pa.string())}))["columns"]["s"]
    assert column["count"] + column["missing"] == len(values)
    assert column["distinct"] <= column["count"]
    assert sum(t["count"] for t in column["top"]) == column["count"]  # <= 10 distinct: all listed
    keys = [(-t["count"], t["value"]) for t in column["top"]]
    assert keys == sorted(keys)
    assert not math.isnan(column["missing_ratio"])


def test_types_arrow_cannot_aggregate_are_counted(tmp_path: Path) -> None:
    table = pa.table(
        {
            "wait": pa.array([dt.timedelta(seconds=s) for s in (1, 2, 3)], pa.duration("s")),
            "tags": pa.array([["a"], ["b", "c"], None]),
            "x": [1, 2, 3],
        }
    )
    pq.write_table(table, tmp_path / "odd.parquet")
    profile = profile_table(pq.read_table(tmp_path / "odd.parquet"))
    assert profile["columns"]["wait"]["kind"] == "other"
    assert profile["columns"]["tags"] == {
        "type": "list<element: string>",
        "kind": "other",
        "count": 2,
        "missing": 1,
        "missing_ratio": 1 / 3,
        "distinct": None,
    }
    assert profile["columns"]["x"]["mean"] == 2.0


# -- streaming and sketches ------------------------------------------------------------------


def _mixed_table(rng: np.random.Generator, rows: int) -> pa.Table:
    return pa.table(
        {
            "x": pa.array(rng.normal(50, 20, rows), mask=rng.random(rows) < 0.1),
            "n": rng.integers(0, 40, rows),
            "s": pa.array(rng.choice(["a", "bb", "ccc", "dé"], rows), mask=rng.random(rows) < 0.05),
            "b": rng.random(rows) < 0.3,
            "d": pa.array(rng.integers(0, 400, rows).astype("datetime64[D]")),
        }
    )


def test_a_profile_fed_batch_by_batch_equals_the_whole_tables(rng: np.random.Generator) -> None:
    table = _mixed_table(rng, 5_000)
    whole = profile_table(table.combine_chunks())
    profiler = Profiler(table.schema)
    profiler.add_all(table.to_batches(max_chunksize=333))
    streamed = profiler.finish()
    for name, column in whole["columns"].items():
        other = streamed["columns"][name]
        assert "sketched" not in other
        for key, value in column.items():
            if isinstance(value, float) or key == "quantiles":
                assert other[key] == pytest.approx(value, rel=1e-12), (name, key)
            else:
                assert other[key] == value, (name, key)


def test_a_column_with_too_many_distinct_values_is_sketched_within_its_stated_bounds(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past EXACT_DISTINCT values (lowered here), quantiles, distinct counts and top values
    come from sketches; the profile says which, and each stays within the bound it states.
    Counts, extremes and the mean stay exact."""
    import mlplan.data._profile as profiling

    monkeypatch.setattr(profiling, "EXACT_DISTINCT", 1_000)
    rows = 60_000
    x = rng.lognormal(3, 1, rows)
    heavy = ["alice@example.com", "bob@example.com"]
    emails = np.array([f"user{i}@example.com" for i in rng.integers(0, 20_000, rows)], object)
    emails[:3_000] = heavy[0]
    emails[3_000:4_000] = heavy[1]
    table = pa.table({"x": x, "email": emails.astype(str)})
    profiler = Profiler(table.schema)
    profiler.add_all(table.to_batches(max_chunksize=4_096))
    profile = profiler.finish()

    column = profile["columns"]["x"]
    assert column["count"] == rows and column["min"] == x.min() and column["max"] == x.max()
    assert column["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert column["sketched"]["quantiles"]["method"] == "KLL"
    rank_error = column["sketched"]["quantiles"]["rank_error"]
    ordered = np.sort(x)
    for q in QUANTILES:
        rank = np.searchsorted(ordered, column["quantiles"][str(q)]) / rows
        assert abs(rank - q) <= rank_error, q
    bound = column["sketched"]["distinct"]["relative_error"]
    assert abs(column["distinct"] - rows) <= bound * rows

    column = profile["columns"]["email"]
    truth = len(set(emails))
    assert column["sketched"]["distinct"]["method"] == "HyperLogLog"
    assert (
        abs(column["distinct"] - truth) <= column["sketched"]["distinct"]["relative_error"] * truth
    )
    error = column["sketched"]["top"]["count_error"]
    top = {t["value"]: t["count"] for t in column["top"][:2]}
    assert list(top) == heavy
    assert 3_000 - error <= top[heavy[0]] <= 3_000 and 1_000 - error <= top[heavy[1]] <= 1_000
    assert column["length"]["max"] == max(len(e) for e in emails)


def test_values_first_frequent_after_the_switch_to_sketches_are_found_with_their_strings(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once sketched, a batch is counted by its rows' hashes; the strings of values that
    turn frequent later (first seen long after the switch, in random rows) are still the
    ones shown, with counts within the stated error, and the lengths stay exact."""
    import mlplan.data._profile as profiling

    monkeypatch.setattr(profiling, "EXACT_DISTINCT", 1_000)
    rows = 40_000
    emails = np.array([f"user{i}@example.com" for i in rng.permutation(rows)], object)
    late = rng.permutation(np.arange(rows // 2, rows))  # rows of the file's second half
    emails[late[:2_000]] = "carol.long.name@example.org"
    emails[late[2_000:2_800]] = "dave@example.org"
    table = pa.table({"email": pa.array(emails.astype(str), pa.large_string())})
    profiler = Profiler(table.schema)
    profiler.add_all(table.to_batches(max_chunksize=3_000))
    column = profiler.finish()["columns"]["email"]

    error = column["sketched"]["top"]["count_error"]
    top = [(t["value"], t["count"]) for t in column["top"][:2]]
    assert [value for value, _ in top] == ["carol.long.name@example.org", "dave@example.org"]
    assert 2_000 - error <= top[0][1] <= 2_000 and 800 - error <= top[1][1] <= 800
    lengths = [len(e) for e in emails]
    assert column["length"] == {
        "min": min(lengths),
        "max": max(lengths),
        "mean": pytest.approx(sum(lengths) / rows, rel=1e-12),
    }


def test_string_hashes_are_equal_for_equal_strings_across_batches_and_offsets() -> None:
    from mlplan.data._sketch import hash_values

    values = pa.array(["", "a", "é", "ab", "ba", "a" * 300, None, "ab"])
    hashes = hash_values(values)
    assert len(hashes) == 7  # missing values are not hashed
    assert hashes[3] == hashes[6] and len(set(hashes.tolist())) == 6
    sliced = hash_values(values.slice(3))
    assert sliced.tolist() == hashes[3:].tolist()
    assert hash_values(pa.array(["ab"], pa.large_string()))[0] == hashes[3]


def test_string_hashes_are_the_same_in_every_thread() -> None:
    """The profile's threads hash strings at once, each with a cursor of one DuckDB database."""
    from concurrent.futures import ThreadPoolExecutor

    from mlplan.data._sketch import hash_values

    values = pa.array([f"value {i}" for i in range(5_000)])
    with ThreadPoolExecutor(4) as pool:
        hashed = list(pool.map(hash_values, [values] * 8))
    assert all(h.tolist() == hashed[0].tolist() for h in hashed)
    assert len(set(hashed[0].tolist())) == 5_000


def test_declared_personal_data_is_counted_but_its_values_never_read_out() -> None:
    table = pa.table({"email": ["a@x.org", "a@x.org", "b@y.org"], "plan": ["x", "x", "y"]})
    profiler = Profiler(table.schema, private=["email"])
    profiler.add_all(table.to_batches())
    columns = profiler.finish()["columns"]
    assert columns["email"]["top"] == [{"value": None, "count": 2}, {"value": None, "count": 1}]
    assert columns["email"]["distinct"] == 2 and columns["email"]["length"]["max"] == 7
    assert columns["plan"]["top"][0] == {"value": "x", "count": 2}


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(0, 30), min_size=1, max_size=80), min_size=1, max_size=6),
    capacity=st.integers(1, 8),
)
def test_frequent_values_cut_batches_as_the_plain_summary_would(
    batches: list[list[int]], capacity: int
) -> None:
    """Misra–Gries, batch by batch: cutting a batch before merging it gives the summary the
    whole merge gives, and each kept count is at most ``error`` below the truth."""
    from collections import Counter

    from mlplan.data._sketch import FrequentValues

    def plain(top: FrequentValues, values: pa.Array, counts: np.ndarray) -> None:
        if top.values is not None:
            merged = pa.concat_arrays([top.values, values]).dictionary_encode()
            weights = np.concatenate([top.counts, counts])
            counts = np.bincount(merged.indices.to_numpy(), weights=weights).astype(np.int64)
            values = merged.dictionary
        if len(values) > top.capacity:
            floor = int(np.partition(counts, -(top.capacity + 1))[-(top.capacity + 1)])
            keep = np.flatnonzero(counts - floor > 0)
            values, counts = values.take(pa.array(keep)), counts[keep] - floor
            top.error += floor
        top.values, top.counts = values, counts

    cut, whole, truth = FrequentValues(capacity), FrequentValues(capacity), Counter[str]()
    for batch in batches:
        found = Counter(f"v{v}" for v in batch)
        truth.update(found)
        values, counts = pa.array(list(found)), np.array(list(found.values()))
        cut.add(values, counts)
        plain(whole, values, counts)
        assert cut.error == whole.error
        assert dict(zip(cut.values.to_pylist(), cut.counts.tolist(), strict=True)) == dict(
            zip(whole.values.to_pylist(), whole.counts.tolist(), strict=True)
        )
    kept = dict(zip(cut.values.to_pylist(), cut.counts.tolist(), strict=True))
    for value, count in truth.items():
        assert truth[value] - cut.error <= kept.get(value, 0) <= count


def test_negative_zero_is_zero_in_every_statistic() -> None:
    column = profile_table(pa.table({"x": [-0.0, 0.0, -0.0, 1.0, float("nan")]}))["columns"]["x"]
    assert column["distinct"] == 2 and column["missing"] == 1
    assert [str(t["value"]) for t in column["top"]] == ["0.0", "1.0"]
    assert str(column["min"]) == "0.0"
