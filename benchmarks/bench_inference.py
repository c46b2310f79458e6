"""Inference speed of mlplan's ONNX packages vs the native models, same models, same run.

Logistic regression and a 100-tree LightGBM on 20 numeric features (100,000 training rows):
single-row latency of the package (ONNX Runtime, one thread, inputs built from a record) vs
scikit-learn / LightGBM ``predict_proba`` on a one-row DataFrame, and batch throughput on
100,000 rows vs native ``predict_proba``. Predictions are checked to agree. Training time of
each baseline family on 100,000 rows is reported too.

    python benchmarks/bench_inference.py [--rows 100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np


def _time_each(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _measure(family: Any, X: Any, y: Any, columns: list[str], calls: int) -> dict[str, Any]:
    import onnxruntime as ort

    from mlplan.modeling import FeatureSet, build_pipeline, export_onnx, onnx_feeds

    features = FeatureSet(columns, [], {})
    rows = len(X)
    pipe = build_pipeline("classification", family, features, 7, {})
    start = time.perf_counter()
    pipe.fit(X, y)
    train_s = time.perf_counter() - start
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    graph = export_onnx(pipe, "classification", family, features)
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    record = X.iloc[[123]].to_dict("records")[0]
    one_row = X.iloc[[123]]

    def package_row() -> Any:
        feeds = {c: np.array([[record[c]]], dtype=np.float32) for c in columns}
        return session.run(None, feeds)[1]

    def native_row() -> Any:
        return pipe.predict_proba(one_row)

    if not np.allclose(package_row(), native_row(), atol=1e-4):
        raise SystemExit(f"{family}: package and native disagree on one row")
    _time_each(package_row, 50)
    _time_each(native_row, 20)
    ours = statistics.median(_time_each(package_row, calls)) * 1e6
    theirs = statistics.median(_time_each(native_row, max(200, calls // 5))) * 1e6
    batch_feeds = onnx_feeds(X, features)
    onnx_proba = session.run(None, batch_feeds)[1]
    native_proba = pipe.predict_proba(X)
    difference = float(np.abs(onnx_proba - native_proba).max())
    if difference > 1e-4:
        raise SystemExit(f"{family}: batch predictions differ by {difference}")
    batch_ours = statistics.median(_time_each(lambda: session.run(None, batch_feeds), 3))
    batch_theirs = statistics.median(_time_each(lambda: pipe.predict_proba(X), 3))
    ours_rps, theirs_rps = rows / batch_ours, rows / batch_theirs
    print(
        f"{family:<10} {'single row p50, µs':<30} {ours:>12.1f} {theirs:>12.1f}  "
        f"{theirs / ours:.1f}x faster (goal >= 30x)"
    )
    print(
        f"{family:<10} {'batch, rows/s':<30} {ours_rps:>12,.0f} {theirs_rps:>12,.0f}  "
        f"{ours_rps / theirs_rps:.2f}x (goal >= 1x)"
    )
    print(f"{family:<10} {'training, s':<30} {train_s:>12.2f}")
    return {
        "single_row_us": ours,
        "native_single_row_us": theirs,
        "single_row_speedup": theirs / ours,
        "batch_rows_per_s": ours_rps,
        "native_batch_rows_per_s": theirs_rps,
        "batch_ratio": ours_rps / theirs_rps,
        "train_seconds": train_s,
        "max_batch_difference": difference,
    }


def _baseline_training_times(rows: int, X: Any) -> dict[str, float]:
    """Seconds to train the other baseline families on ``rows`` examples: ridge (regression),
    GBT on window features (sequences: 24-step windows of a random walk), and the image
    baseline (a logistic head on a frozen CNN over 8x8 images; needs the torch extra)."""
    from mlplan.modeling import FeatureSet, build_pipeline
    from mlplan.modeling._tabular import build_window_estimator, window_features

    rng = np.random.default_rng(11)
    out = {}
    features = FeatureSet(list(X.columns), [], {})
    ridge = build_pipeline("regression", "linear", features, 7, {})
    start = time.perf_counter()
    ridge.fit(X, X.to_numpy() @ rng.normal(size=X.shape[1]))
    out["linear (regression)"] = time.perf_counter() - start

    series = np.cumsum(rng.normal(size=rows + 25)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(series[:-1], 24)[:rows, :, None]
    gbt = build_window_estimator("regression", "gbt", 7, {})
    start = time.perf_counter()
    gbt.fit(window_features(np.ascontiguousarray(windows)), series[24 : 24 + rows])
    out["gbt on windows (sequence)"] = time.perf_counter() - start

    try:
        import torch
    except ImportError:
        return out
    from mlplan.modeling._cnn import _fit_head

    torch.manual_seed(0)
    backbone = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 4 * 4, 64),
    ).eval()
    images = torch.rand(rows, 1, 8, 8)
    labels = torch.randint(0, 10, (rows,))
    start = time.perf_counter()
    with torch.no_grad():
        embedded = torch.cat([backbone(images[i : i + 4096]) for i in range(0, rows, 4096)])
    _fit_head(embedded, labels, 10, 1.0, 0)
    out["cnn, frozen + logistic head (images)"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/bench_inference.json")
    )
    args = parser.parse_args()

    import pandas as pd

    rng = np.random.default_rng(7)
    columns = [f"x{i:02d}" for i in range(20)]
    X = pd.DataFrame(rng.normal(size=(args.rows, 20)), columns=columns)
    y = (X.to_numpy() @ rng.normal(size=20) + rng.normal(size=args.rows) > 0).astype(int)
    y = np.where(y == 1, "1", "0").astype(object)
    report: dict[str, Any] = {"rows": args.rows, "features": 20}
    print(
        f"bench_inference: {args.rows:,} rows × 20 features; single row: median of "
        f"{args.calls:,} calls"
    )
    print(f"{'family':<10} {'measure':<30} {'mlplan':>12} {'native':>12}  ratio")
    for family in ("logistic", "gbt"):
        report[family] = _measure(family, X, y, columns, args.calls)
    report["baseline_training_seconds"] = {
        "logistic (classification)": report["logistic"]["train_seconds"],
        **_baseline_training_times(args.rows, X),
    }
    print(f"training time of each baseline family on {args.rows:,} rows:")
    for name, seconds in report["baseline_training_seconds"].items():
        print(f"  {name:<40} {seconds:>8.2f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
