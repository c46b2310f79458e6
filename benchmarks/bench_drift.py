"""Drift of a window against a training reference: mlplan vs Evidently's data-drift preset,
same frames, same run.

A reference and a current frame of ``--rows`` rows (default 1,000,000) x 20 numeric and 5
categorical columns; drift is planted in a quarter of each (a mean shifted by one standard
deviation, a widened spread, category shares moved), the rest drawn alike. Both frames are
written to Parquet once; each side then runs in a process of its own, reading them, so that
each one's peak resident memory (``ru_maxrss``) is its own.

mlplan profiles the reference as training does (``reference.json``'s numbers) and measures
the window with ``feature_drift`` (auto: at this size PSI on the training deciles, drifted
above 0.2, and the Jensen-Shannon distance in base 2, drifted above 0.1). Evidently 0.7's
``DataDriftPreset`` runs in its own virtual environment (``build/bench-evidently``: Evidently
from the registry with pandas 2.x, made on first run and reused after). Left to itself it
picks, above 1,000 rows, the normed Wasserstein distance for numbers and the Jensen-Shannon
distance for categories (both drifted at 0.1); so that the verdicts compare, it is run with
``num_method="psi", num_threshold=0.2`` and ``cat_method="jensenshannon",
cat_threshold=0.1``, mlplan's choices. The methods still differ in detail (Evidently bins
numbers in 10 equal-width bins of both frames together, mlplan at the training deciles;
Evidently's Jensen-Shannon is in base e), so the verdicts are compared column by column and
each side's is also checked against the planted drift. ``--evidently-default`` runs its own
choices instead.

Goal (#15): at least 50x faster than Evidently (~150 s here) at at most half its peak memory
(~2.4 GB), the same verdict per column. Take the figures on a quiet machine.

    python benchmarks/bench_drift.py [--rows 1000000] [--no-evidently] [--evidently-default]
        [--json out.json]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import _ensure_venv

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_VENV = ROOT / "build" / "bench-evidently"
# Evidently 0.7.23 (Apache-2.0) with the pandas 2 it is built for.
EVIDENTLY = ["evidently==0.7.23", "pandas==2.3.3"]
NUMERIC, CATEGORICAL = 20, 5
CATEGORIES = [f"v{k}" for k in range(12)]

_EVIDENTLY = """
import json, resource, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
settings = json.loads(sys.argv[3])
# Above 1,000 rows every method Evidently picks, and those set here, are distances.
DISTANCES = {"psi", "jensenshannon", "Wasserstein distance (normed)", "Jensen-Shannon distance"}
started = time.perf_counter()
snapshot = Report([DataDriftPreset(**settings)]).run(current, reference)
result = snapshot.dict()
seconds = time.perf_counter() - started
verdicts, methods = {}, {}
for metric in result["metrics"]:
    config = metric.get("config") or {}
    column = config.get("column")
    if config.get("type", "").endswith("ValueDrift") and column:
        method = str(config.get("method"))
        if method not in DISTANCES:  # a test's p-value drifts below its threshold instead
            raise SystemExit(f"{column}: {method} is not a distance this script reads")
        verdicts[column] = float(metric["value"]) >= float(config["threshold"])
        methods[column] = method
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak_bytes": peak, "drifted": verdicts,
                  "methods": sorted({str(m) for m in methods.values()})}))
"""
# Evidently's per-column choices set to mlplan's at this size (see the module's docstring).
MATCHED = {"num_method": "psi", "num_threshold": 0.2, "cat_method": "jensenshannon",
           "cat_threshold": 0.1}  # fmt: skip


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


def run_mlplan(reference_path: Path, current_path: Path) -> dict[str, Any]:
    """In this process: read both frames, profile the reference as training does, then
    measure the window; the times and this process's peak memory."""
    from mlplan.modeling import TrainingReference
    from mlplan.modeling._reference import categorical_reference, numeric_reference
    from mlplan.monitoring import feature_drift
    from mlplan.plan import MonitoringSpec

    reference, current = pq.read_table(reference_path), pq.read_table(current_path)
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
    del reference  # training is over: monitoring holds the profile, never the rows
    started = time.perf_counter()
    report = feature_drift(profile, current, MonitoringSpec())
    measured = time.perf_counter() - started
    return {
        "reference_seconds": profiled,
        "reference_bytes": size,
        "seconds": measured,
        "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "methods": sorted({d.method for d in report.features}),
        "drifted": {d.feature: bool(d.drifted) for d in report.features},
    }


def _side(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-evidently", action="store_true", help="mlplan alone")
    parser.add_argument(
        "--evidently-default", action="store_true", help="Evidently's own method choices"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--side", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side is not None:  # the mlplan side, in its own process
        print(json.dumps(run_mlplan(*args.side)))
        return

    evidently = None if args.no_evidently else _ensure_venv(EVIDENTLY_VENV, EVIDENTLY)
    reference, current, planted = make_frames(args.rows)
    result: dict[str, Any] = {"rows": args.rows, "planted": planted}
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / "reference.parquet", Path(folder) / "current.parquet"]
        pq.write_table(reference, paths[0])
        pq.write_table(current, paths[1])
        del reference, current
        ours = _side([sys.executable, __file__, "--side", *map(str, paths)])
        if evidently is not None:
            settings = {} if args.evidently_default else MATCHED
            theirs = _side([str(evidently), "-c", _EVIDENTLY, *map(str, paths),
                            json.dumps(settings)])  # fmt: skip
            theirs["settings"] = settings
            result["evidently"] = theirs
    result["mlplan"] = ours
    wrong = sorted(c for c, d in ours["drifted"].items() if d != (c in planted))
    print(f"bench_drift: {args.rows:,} rows x {NUMERIC} numeric + {CATEGORICAL} categorical")
    print(
        f"mlplan: reference {ours['reference_seconds']:.2f} s ({ours['reference_bytes']:,} "
        f"bytes), drift {ours['seconds']:.2f} s with {', '.join(ours['methods'])}; "
        f"verdicts off the planted drift: {wrong or 'none'}"
    )
    if "evidently" in result:
        theirs = result["evidently"]
        speedup = theirs["seconds"] / ours["seconds"]
        memory = ours["peak_bytes"] / theirs["peak_bytes"]
        differ = sorted(c for c, d in ours["drifted"].items() if theirs["drifted"].get(c) != d)
        off = sorted(c for c, d in theirs["drifted"].items() if d != (c in planted))
        result.update(speedup=speedup, memory_ratio=memory, verdicts_differ=differ,
                      evidently_off_planted=off)  # fmt: skip
        print(f"Evidently {', '.join(theirs['methods'])}; off the planted drift: {off or 'none'}")
        print(f"{'':<12}{'drift s':>10}{'peak GiB':>10}")
        for name, side in (("mlplan", ours), ("Evidently", theirs)):
            print(f"{name:<12}{side['seconds']:>10.2f}{side['peak_bytes'] / 2**30:>10.2f}")
        print(f"{'ratio':<12}{speedup:>9.0f}x{memory:>10.2f}  (goals: >= 50x, <= 0.50)")
        print(f"verdicts differ on: {differ or 'none'}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    if wrong:
        sys.exit(1)


if __name__ == "__main__":
    main()
