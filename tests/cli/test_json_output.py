"""``--json`` answers are strict JSON: a number that is missing or undefined is null, never a
bare NaN or Infinity (which Python's parser lets through and strict parsers refuse). The
``cli`` fixture parses every ``--json`` answer of the CLI tests strictly too."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import strict_json

from mlplan.cli._render import print_json


def test_undefined_numbers_are_null_and_the_rest_is_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_json(
        {
            "kappa": float("nan"),
            "ratio": float("inf"),
            "scores": [np.float64(0.5), np.float32("nan"), -float("inf")],
            "rows": np.int64(3),
            "when": dt.date(2026, 12, 6),
            "where": Path("data/customers.csv"),
        }
    )
    assert strict_json(capsys.readouterr().out) == {
        "kappa": None,
        "ratio": None,
        "scores": [0.5, None, None],
        "rows": 3,
        "when": "2026-12-06",
        "where": "data/customers.csv",
    }


def test_the_strict_parser_refuses_what_json_dumps_would_write() -> None:
    with pytest.raises(AssertionError, match="a bare NaN"):
        strict_json('{"kappa": NaN}')
