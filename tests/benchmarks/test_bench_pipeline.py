"""benchmarks/bench_pipeline.py at a tiny scale: the churn pipeline fresh, then rerun with
every step reused, and its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_pipeline_reruns_every_step_cached_and_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "bench_pipeline.json"
    command = [
        sys.executable, str(REPO / "benchmarks" / "bench_pipeline.py"),
        "--rows", "900", "--repeat", "1", "--out", str(tmp_path / "work"), "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["goal_s"] == 2.0 and result["rows"] == 900
    steps = ["data", "split", "train", "labels", "compare", "evaluate", "gates", "deploy"]
    assert list(result["fresh"]["steps_s"]) == steps
    assert len(result["cached"]["wall_s"]) == 1
    assert result["ratio"] > 0 and "cached rerun: median" in done.stdout
