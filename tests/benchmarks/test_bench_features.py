"""benchmarks/bench_features.py at a tiny scale: both ways agree, both ratios are measured
and its JSON is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_features_measures_both_goals_on_a_tiny_table_and_writes_its_json(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench_features.json"
    command = [
        sys.executable, str(REPO / "benchmarks" / "bench_features.py"),
        "--rows", "3000", "--single", "100", "--repeat", "1", "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "results agree" in done.stdout

    result = json.loads(out.read_text())
    assert (result["rows"], result["features"], result["single_rows"]) == (3000, 20, 100)
    assert result["duckdb_seconds"] > 0 and result["pandas_seconds"] > 0
    for family in ("logistic", "gbt"):
        times = result["single"][family]
        assert times["with_ms"] > 0 and times["without_ms"] > 0
        assert times["ratio"] == times["with_ms"] / times["without_ms"]
    assert set(result["goals"]) == {
        "batch >= 5x pandas",
        "single row logistic <= 1.2x",
        "single row gbt <= 1.2x",
    }
