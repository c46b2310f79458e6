"""benchmarks/bench_scale.py at a tiny scale, on the local engine (Ray's equality with it is
tested in tests/data, tests/serving and tests/evaluation): it makes and keeps its data and
project, measures profile and score at two sizes, and writes its table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_scale_profiles_and_scores_two_sizes_and_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "bench_scale.json"
    command = [
        sys.executable, str(REPO / "benchmarks" / "bench_scale.py"),
        "--rows", "1500", "--rows", "3000", "--engines", "local",
        "--cache", str(tmp_path / "cache"), "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    result = json.loads(out.read_text())
    assert result["sizes"] == [1500, 3000] and result["engines"] == ["local"]
    for rows in (1500, 3000):
        local = result["runs"][str(rows)]["local"]
        for step in ("profile", "score"):
            assert local[step]["rows"] == rows
            assert local[step]["rows_per_s"] == pytest.approx(rows / local[step]["seconds"])
            assert local[step]["driver_peak_mb"] > local[step]["driver_peak_anon_mb"] > 0
        assert local["score"]["refused"] == 0
    assert "peak memory growth from 1,500 to 3,000 rows (x2.0):" in done.stdout
    assert sorted(p.name for p in (tmp_path / "cache").glob("*.parquet")) == [
        "customers-v1-1500.parquet",
        "customers-v1-3000.parquet",
    ]  # the data kept, the scored files removed
