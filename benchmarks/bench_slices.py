"""Per-slice metrics: mlplan vs fairlearn's MetricFrame vs a hand-written DuckDB query.

1,000,000 binary predictions, 100 slices (gender x 50 regions), metrics accuracy,
precision, recall, F1 and count, all three measured in the same run on the same data; the
numbers must agree. Goals: mlplan at least 300x faster than MetricFrame, and within 1.5x
of the hand-written query. mlplan and the query are timed in turns (one of each, ``--repeat``
times), so that a load that comes and goes on a shared machine weighs on both alike; the
ratio is the median of each turn's.

    python benchmarks/bench_slices.py [--rows 1000000] [--repeat 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

HAND_QUERY = """
SELECT gender, region, count(*) AS n,
       avg((y = p)::INT) AS accuracy,
       sum(y * p) / nullif(sum(p), 0) AS precision,
       sum(y * p) / nullif(sum(y), 0) AS recall,
       2 * sum(y * p) / nullif(sum(y) + sum(p), 0) AS f1
FROM predictions GROUP BY gender, region
"""
METRICS = ["accuracy", "precision", "recall", "f1"]


def _times(fn: Any, repeat: int) -> tuple[list[float], Any]:
    out, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - start)
    return out, result


def _in_turns(first: Any, second: Any, repeat: int) -> tuple[list[float], Any, list[float], Any]:
    """Each function's times and last result, called in turns."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        ta, one = _times(first, 1)
        tb, two = _times(second, 1)
        a += ta
        b += tb
    return a, one, b, two


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_slices.json"))
    args = parser.parse_args()

    import duckdb
    import pandas as pd
    import pyarrow as pa
    import sklearn.metrics as skm
    from fairlearn.metrics import MetricFrame, count

    from mlplan.evaluation import Predictions, slice_metrics

    rng = np.random.default_rng(7)
    n = args.rows
    gender = rng.choice(["female", "male"], n)
    region = np.char.add("region_", rng.integers(0, 50, n).astype(str))
    y = rng.integers(0, 2, n)
    p = np.where(rng.random(n) < 0.8, y, 1 - y)
    arrow = {"gender": pa.array(gender), "region": pa.array(region)}
    table = pa.table({**arrow, "y": y, "p": p})

    def run_mlplan() -> Any:
        data = Predictions.from_arrays(y, p, kind="binary")
        return slice_metrics(data, sensitive_features=arrow, metrics=METRICS)

    con = duckdb.connect()
    con.register("predictions", table)

    def run_duckdb() -> Any:
        return con.execute(HAND_QUERY).fetchall()

    frame_inputs = pd.DataFrame({"gender": gender, "region": region})

    def run_metricframe() -> Any:
        return MetricFrame(
            metrics={
                "accuracy": skm.accuracy_score,
                "precision": skm.precision_score,
                "recall": skm.recall_score,
                "f1": skm.f1_score,
                "count": count,
            },
            y_true=y,
            y_pred=p,
            sensitive_features=frame_inputs,
        ).by_group

    run_mlplan(), run_duckdb()  # warm up: imports, the thread's DuckDB connection
    mlplan_s, report, duck_s, rows = _in_turns(run_mlplan, run_duckdb, args.repeat)
    frame_s, by_group = _times(run_metricframe, 1)

    # The three agree on every slice and metric.
    worst = 0.0
    assert len(report.by_group) == len(rows) == len(by_group) == 100
    for g, r, count_, *values in rows:
        mine = report.by_group[f"gender={g} & region={r}"]
        theirs = by_group.loc[(g, r)]
        assert mine["count"].value == count_ == theirs["count"]
        for name, value in zip(METRICS, values, strict=True):
            worst = max(worst, abs(mine[name].value - value), abs(mine[name].value - theirs[name]))
    if worst > 1e-12:
        raise SystemExit(f"results disagree by {worst:.2e}")

    m, d, f = statistics.median(mlplan_s), statistics.median(duck_s), frame_s[0]
    ratio = statistics.median(a / b for a, b in zip(mlplan_s, duck_s, strict=True))
    print(f"bench_slices: {n:,} predictions, 100 slices, metrics {', '.join(METRICS)}, count")
    print(f"{'':<34}{'seconds':>10}")
    print(f"{'mlplan slice_metrics (median)':<34}{m:>10.4f}")
    print(f"{'hand-written DuckDB query (median)':<34}{d:>10.4f}")
    print(f"{'fairlearn MetricFrame':<34}{f:>10.3f}")
    print(f"mlplan vs MetricFrame: {f / m:,.0f}x faster (goal >= 300x)")
    print(f"mlplan vs the DuckDB query: {ratio:.2f}x its time (goal <= 1.5x)")
    print(f"all {len(rows)} slices agree (largest difference {worst:.1e})")
    result = {
        "rows": n,
        "slices": 100,
        "mlplan_seconds": mlplan_s,
        "duckdb_seconds": duck_s,
        "metricframe_seconds": f,
        "speedup_vs_metricframe": f / m,
        "ratio_to_duckdb": ratio,
        "max_abs_difference": worst,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
