"""The record validator's fast path (whole columns at once) against its checked path (field by
field): whatever a request holds, both give the same feeds, errors and counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplan.modeling import PackageSignature
from mlplan.serving._validate import Feeds, RecordValidator, merge_feeds

SIGNATURE = PackageSignature.from_dict(
    {
        "inputs": [
            {"name": "age", "type": "number", "min": 18.0, "max": 90.0, "nullable": False},
            {"name": "income", "type": "number", "min": 0.0, "max": 1e6, "nullable": True},
            {"name": "score", "type": "number", "nullable": False},  # no recorded range
            {"name": "plan", "type": "string", "categories": ["basic", "pro"], "nullable": False},
            {"name": "city", "type": "string", "categories": [], "nullable": True},  # redacted
        ]
    }
)

NUMBERS = st.one_of(
    st.floats(min_value=18, max_value=90),
    st.integers(min_value=18, max_value=90),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([3.5e38, -3.5e38, 3.4028234e38, 2**24 + 1, 10**400, 0, -0.0]),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
STRINGS = st.one_of(
    st.sampled_from(["basic", "pro", "enterprise", "", "pr\u00f6", "\ud800"]),
    st.text(max_size=4),
    st.none(),
    st.integers(),
)


def _record() -> st.SearchStrategy[Any]:
    clean = st.fixed_dictionaries(
        {
            "age": NUMBERS,
            "income": NUMBERS,
            "score": NUMBERS,
            "plan": STRINGS,
            "city": STRINGS,
        }
    )
    odd = st.one_of(
        clean.map(lambda r: {k: v for k, v in r.items() if k != "income"}),  # a field missing
        clean.map(lambda r: {**r, "extra": 1}),  # an unknown field
        st.integers(),
        st.lists(st.integers(), max_size=2),
    )
    return st.one_of(clean, clean, clean, odd)


def _same(a: Any, b: Any) -> None:
    assert [e.to_dict() for e in a.errors] == [e.to_dict() for e in b.errors]
    assert (a.missing, a.out_of_range, a.unseen, a.rows) == (
        b.missing,
        b.out_of_range,
        b.unseen,
        b.rows,
    )
    if a.errors:
        return
    assert list(a.feeds) == list(b.feeds)
    for name in a.feeds:
        left, right = a.feeds[name], b.feeds[name]
        assert left.dtype == right.dtype and left.shape == right.shape, name
        if left.dtype == object:
            assert left.tolist() == right.tolist(), name
        else:
            np.testing.assert_array_equal(left, right, err_msg=name)


@pytest.mark.parametrize("out_of_range", ["reject", "allow", "clip"])
@pytest.mark.parametrize("unseen", ["reject", "allow"])
@settings(max_examples=150, deadline=None)
@given(
    records=st.one_of(
        st.lists(_record(), min_size=0, max_size=4),
        st.lists(_record(), min_size=17, max_size=24),  # past the few-rows branch
        st.integers(),
    )
)
def test_the_fast_path_agrees_with_the_checked_one(
    out_of_range: Any, unseen: Any, records: Any
) -> None:
    validator = RecordValidator(SIGNATURE, unseen_categories=unseen, out_of_range=out_of_range)
    _same(validator.validate(records), validator.checked(records))


NEAR_VALID = st.fixed_dictionaries(
    {
        "age": st.one_of(st.floats(17.9, 90.1), st.integers(17, 91)),
        "income": st.one_of(st.floats(0, 1e6), st.integers(0, 10**6), st.none()),
        "score": st.one_of(
            st.floats(-3.5e38, 3.5e38), st.integers(-(2**130), 2**130), st.just(float("nan"))
        ),
        "plan": st.sampled_from(["basic", "pro", "basic", "pro", "team"]),
        "city": st.one_of(st.text(max_size=3), st.just("\udc80")),
    }
)


@settings(max_examples=300, deadline=None)
@given(records=st.lists(NEAR_VALID, min_size=1, max_size=20))
def test_the_fast_path_takes_exactly_the_requests_with_nothing_to_report(
    records: list[dict[str, Any]],
) -> None:
    validator = RecordValidator(SIGNATURE, out_of_range="clip")
    checked = validator.checked(records)
    clean = not (checked.errors or checked.missing or checked.out_of_range or checked.unseen)
    fast = validator._fast(records)
    assert (fast is not None) == clean
    if fast is not None:
        _same(fast, checked)


@pytest.mark.parametrize("rows", [1, 5, 40])
def test_clean_requests_take_the_fast_path_with_the_same_feeds(rows: int) -> None:
    rng = np.random.default_rng(rows)
    records = [
        {
            "age": int(rng.integers(18, 91)),
            "income": float(rng.uniform(0, 1e6)),
            "score": float(rng.normal()),
            "plan": str(rng.choice(["basic", "pro"])),
            "city": "Zürich",
        }
        for _ in range(rows)
    ]
    validator = RecordValidator(SIGNATURE)
    fast = validator._fast(records)
    assert fast is not None and isinstance(fast.feeds, Feeds)
    _same(fast, validator.checked(records))
    assert fast.feeds["age"].shape == (rows, 1) and fast.feeds["age"].dtype == np.float32


def test_merged_feeds_are_the_requests_one_after_another() -> None:
    validator = RecordValidator(SIGNATURE)
    parts = [
        validator.validate(
            [
                {"age": 20 + i + j, "income": None, "score": i, "plan": "pro", "city": "x"}
                for j in range(i + 1)
            ]
        ).feeds
        for i in range(3)
    ]
    merged = merge_feeds(parts)
    for name in SIGNATURE_NAMES:
        expected = np.concatenate([p[name] for p in parts])
        assert merged[name].shape == expected.shape
        assert merged[name].tolist() == expected.tolist() or name == "income"
    assert np.isnan(merged["income"]).all()
    # A plain mapping joins the same way.
    plain = merge_feeds([dict(p) for p in parts])
    assert all(plain[n].tolist() == merged[n].tolist() for n in ("age", "plan"))


SIGNATURE_NAMES = SIGNATURE.names


COLUMN_NUMBERS = st.one_of(
    st.floats(17.9, 90.1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([3.5e38, -3.5e38, 3.4028234e38, 2**24 + 1, 0.0, -0.0]),
)


@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<i8"])
@settings(max_examples=120, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            COLUMN_NUMBERS,
            COLUMN_NUMBERS,
            COLUMN_NUMBERS,
            st.sampled_from(["basic", "pro", "team"]),
            st.text(max_size=3),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_binary_columns_take_the_same_checks_as_records(
    dtype: str, rows: list[tuple[Any, ...]]
) -> None:
    """Binary tensors, decoded to columns, are checked with numpy; whatever they hold, the
    answer is the checked path's on the same values as records (NaN: null)."""
    names = ["age", "income", "score", "plan", "city"]
    columns: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        values = [row[k] for row in rows]
        if k >= 3:
            columns[name] = np.array(values, dtype=object)
        elif dtype == "<i8":
            columns[name] = np.array(
                [int(v) if np.isfinite(v) and abs(v) < 2**62 else 0 for v in values], dtype
            )
        else:
            with np.errstate(over="ignore"):
                columns[name] = np.array(values, dtype=np.float64).astype(dtype)
    listed = {name: column.tolist() for name, column in columns.items()}
    records = [
        {name: None if v != v else v for name, v in zip(names, values, strict=True)}
        for values in zip(*listed.values(), strict=True)
    ]
    validator = RecordValidator(SIGNATURE, out_of_range="clip")
    loc = ("body", "inputs")
    _same(
        validator.validate_columns(columns, len(rows), loc=loc), validator.checked(records, loc=loc)
    )


def test_a_missing_field_says_whether_null_may_stand_for_it() -> None:
    # Told to send null, a client sending null for a field never missing in training would be
    # refused again; only a nullable field may be sent as null.
    validator = RecordValidator(SIGNATURE)
    result = validator.validate([{"score": 1.0, "plan": "basic", "city": None}])
    messages = {e.loc[-1]: (e.type, e.msg) for e in result.errors}
    assert messages == {
        "age": ("missing", "field required; it may not be null: it was never missing in training"),
        "income": ("missing", "field required (send null when unknown)"),
    }
    null_age = validator.validate([{"age": None, "income": None, "score": 1.0, "plan": "basic"}])
    assert {e.loc[-1]: e.type for e in null_age.errors} == {"age": "null", "city": "missing"}
