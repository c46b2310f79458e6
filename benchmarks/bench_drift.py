"""Drift of a window against a training reference: mlplan vs Evidently's data-drift preset,
same frames, same run.

A reference and a current frame of ``--rows`` rows (default 1,000,000) x 20 numeric and 5
categorical columns; drift is planted in a quarter of each (a mean shifted by one standard
deviation, a widened spread, category shares moved), the rest drawn alike. mlplan profiles the
reference as training does (``reference.json``'s numbers) and measures the window with
``feature_drift`` (auto: PSI on the training deciles and Jensen-Shannon at this size); each is
timed, with the process's peak memory. With ``--evidently-python`` (a Python with Evidently and
pandas 2.x installed, in its own virtualenv), Evidently's ``DataDriftPreset`` runs on the same
Parquet files in a subprocess and the verdicts per column are compared.

Goal (#15): at least 50x faster than Evidently (~150 s here) at at most half its peak memory
(~2.4 GB), the same verdict per column.

    python benchmarks/bench_drift.py [--rows 1000000] [--evidently-python PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NUMERIC, CATEGORICAL = 20, 5
CATEGORIES = [f"v{k}" for k in range(12)]

_EVIDENTLY = """
import json, resource, sys, time
import pandas as pd
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
started = time.perf_counter()
try:  # Evidently 0.7 and later
    from evidently import Report
    from evidently.presets import DataDriftPreset
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    result = snapshot.dict()
    verdicts = {}
    for metric in result["metrics"]:
        column = (metric.get("config") or {}).get("params", {}).get("column")
        value = metric.get("value")
        if column and isinstance(value, (int, float)):
            threshold = metric["config"]["params"].get("threshold") or 0.1
            verdicts[column] = bool(value >= threshold)
except ImportError:  # Evidently 0.4 to 0.6
    from evidently.metric_preset import DataDriftPreset
    from evidently.report import Report
    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=reference, current_data=current)
    result = report.as_dict()
    table = next(m["result"] for m in result["metrics"] if "drift_by_columns" in m["result"])
    verdicts = {c: bool(d["drift_detected"]) for c, d in table["drift_by_columns"].items()}
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak_bytes": peak, "drifted": verdicts}))
"""


def make_frames(rows: int, seed: int = 7) -> tuple[pa.Table, pa.Table, list[str]]:
    """The reference, the current frame, and the columns drift was planted in."""
    rng = np.random.default_rng(seed)
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    planted: list[str] = []
    for i in range(NUMERIC):
        name = f"num_{i:02d}"
        scale = 1 + i % 4
        reference[name] = rng.normal(i, scale, rows)
        if i % 4 == 0:
            current[name] = rng.normal(i + scale, scale, rows)  # shifted one deviation
            planted.append(name)
        elif i % 4 == 1 and i < 8:
            current[name] = rng.normal(i, 2 * scale, rows)  # twice as wide
            planted.append(name)
        else:
            current[name] = rng.normal(i, scale, rows)
    shares = np.linspace(1, 3, len(CATEGORIES))
    shares /= shares.sum()
    for i in range(CATEGORICAL):
        name = f"cat_{i}"
        reference[name] = rng.choice(CATEGORIES, rows, p=shares)
        moved = shares[::-1] if i < 2 else shares
        current[name] = rng.choice(CATEGORIES, rows, p=moved)
        if i < 2:
            planted.append(name)
    return pa.table(reference), pa.table(current), planted


def run_mlplan(reference: pa.Table, current: pa.Table) -> dict[str, Any]:
    """Profile the reference as training does, then measure the window."""
    from mlplan.modeling import TrainingReference
    from mlplan.modeling._reference import categorical_reference, numeric_reference
    from mlplan.monitoring import feature_drift
    from mlplan.plan import MonitoringSpec

    started = time.perf_counter()
    inputs: dict[str, Any] = {}
    for name in reference.column_names:
        column = reference.column(name)
        if pa.types.is_floating(column.type):
            inputs[name] = numeric_reference(name, column)
        else:
            inputs[name] = categorical_reference(name, column)
    profiled = time.perf_counter() - started
    profile = TrainingReference("bench", reference.num_rows, inputs)
    size = len(profile.to_json())
    started = time.perf_counter()
    report = feature_drift(profile, current, MonitoringSpec())
    measured = time.perf_counter() - started
    return {
        "reference_seconds": profiled,
        "reference_bytes": size,
        "seconds": measured,
        "methods": sorted({d.method for d in report.features}),
        "drifted": {d.feature: bool(d.drifted) for d in report.features},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--evidently-python", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    reference, current, planted = make_frames(args.rows)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ours = run_mlplan(reference, current)
    ours["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ours["peak_bytes_before"] = before
    wrong = sorted(c for c, d in ours["drifted"].items() if d != (c in planted))
    result: dict[str, Any] = {"rows": args.rows, "planted": planted, "mlplan": ours}
    print(
        f"mlplan: reference {ours['reference_seconds']:.2f} s ({ours['reference_bytes']:,} "
        f"bytes), drift {ours['seconds']:.2f} s with {', '.join(ours['methods'])}; "
        f"verdicts off the planted drift: {wrong or 'none'}"
    )
    if args.evidently_python is not None:
        with tempfile.TemporaryDirectory() as folder:
            paths = [Path(folder) / "reference.parquet", Path(folder) / "current.parquet"]
            pq.write_table(reference, paths[0])
            pq.write_table(current, paths[1])
            done = subprocess.run(
                [str(args.evidently_python), "-c", _EVIDENTLY, *map(str, paths)],
                capture_output=True,
                text=True,
                check=True,
            )
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
        differ = sorted(c for c, d in ours["drifted"].items() if theirs["drifted"].get(c) != d)
        result["evidently"] = theirs
        result["speedup"] = theirs["seconds"] / ours["seconds"]
        result["verdicts_differ"] = differ
        print(
            f"Evidently: {theirs['seconds']:.1f} s, peak {theirs['peak_bytes'] / 2**30:.2f} GiB; "
            f"mlplan {result['speedup']:.0f}x faster; verdicts differ on: {differ or 'none'}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    if wrong:
        sys.exit(1)


if __name__ == "__main__":
    main()
