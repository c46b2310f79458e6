"""The evaluation's metrics with bootstrap intervals: mlplan vs fairlearn's MetricFrame.

What ``mlplan evaluate`` computes for a binary model with probabilities: every metric of the
task (counting metrics, ROC AUC, PR AUC, log loss, Brier, ECE) overall and for each value of
six plan slices, each with a 95% interval from 200 bootstrap resamples. The peer is
fairlearn's ``MetricFrame(..., n_boot=200, ci_quantiles=[0.025, 0.975])`` with the same
metrics (scikit-learn's functions) per slice. Both run in the same process on the same
predictions; point values must agree exactly (1e-9) and intervals within Monte Carlo error:
two independent 200-draw estimates of a 2.5% quantile differ by about 0.07 of the
interval's width (one standard deviation, for normal draws), so each end must lie within
0.35 of the width (5 of them; hundreds of ends are compared). Goals: at least 50x faster
than MetricFrame, and under 20 s at 1,000,000 rows.

MetricFrame's bootstrap re-runs every metric on every resample of every slice; at a million
rows that takes hours, so by default it runs on ``--peer-boot`` resamples and its time is
scaled linearly to 200 (it measures once on the rows and once per resample, each at the
same cost: the time is scaled by 201 / (1 + resamples); the table says so), and
``--peer-rows`` may subsample the rows for it, scaled linearly too. Its intervals are then
compared only when it ran on the same rows with enough resamples.

    python benchmarks/bench_evaluate.py [--rows 1000000] [--peer-rows N] [--peer-boot 10]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

BOOT = 200
SLICES = {"gender": 2, "region": 8, "age_band": 5, "plan": 3, "tenure": 4, "channel": 6}


def _data(n: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, n)
    # A logistic-looking score with float32 precision, as an ONNX model gives: some ties.
    score = (1 / (1 + np.exp(-(1.6 * y - 0.8 + rng.normal(0, 1, n))))).astype(np.float32)
    score = score.astype(np.float64)
    features = {name: rng.integers(0, k, n) for name, k in SLICES.items()}
    return {"y": y, "score": score, "pred": (score >= 0.5).astype(int), "features": features}


def _mlplan(d: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    from mlplan.evaluation import Predictions, slice_metrics

    start = time.perf_counter()
    proba = np.column_stack([1 - d["score"], d["score"]])
    data = Predictions.from_arrays(d["y"], d["pred"], kind="binary", proba=proba, classes=[0, 1])
    overall = slice_metrics(data, name="overall", n_boot=BOOT, seed=0)
    reports = {"overall": overall}
    for name, codes in d["features"].items():
        masks = {f"{name}={v}": codes == v for v in np.unique(codes)}
        reports[name] = slice_metrics(
            data, groups=masks, name=name, n_boot=BOOT, seed=0, overall=overall
        )
    return time.perf_counter() - start, reports


def _metric_functions() -> dict[str, Any]:
    import sklearn.metrics as skm

    def rate(kind: str) -> Any:
        def fn(y: np.ndarray, p: np.ndarray) -> float:
            tn, fp, fn_, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
            num, den = {
                "fpr": (fp, fp + tn),
                "fnr": (fn_, fn_ + tp),
                "fdr": (fp, fp + tp),
                "for": (fn_, fn_ + tn),
            }[kind]
            return float(num / den) if den else float("nan")

        return fn

    return {
        "accuracy": skm.accuracy_score,
        "precision": lambda y, p: skm.precision_score(y, p, zero_division=0),
        "recall": lambda y, p: skm.recall_score(y, p, zero_division=0),
        "f1": lambda y, p: skm.f1_score(y, p, zero_division=0),
        "macro_f1": lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0),
        "fpr": rate("fpr"),
        "fnr": rate("fnr"),
        "fdr": rate("fdr"),
        "for": rate("for"),
    }


def _score_functions() -> dict[str, Any]:
    import sklearn.metrics as skm

    def ece(y: np.ndarray, s: np.ndarray) -> float:
        proba = np.column_stack([1 - s, s])
        confidence = proba.max(axis=1)
        correct = (proba.argmax(axis=1) == y).astype(float)
        bins = np.minimum((confidence * 10).astype(int), 9)
        gaps = np.bincount(bins, correct - confidence, 10)
        return float(np.abs(gaps).sum() / len(y))

    return {
        "roc_auc": skm.roc_auc_score,
        "pr_auc": skm.average_precision_score,
        "log_loss": lambda y, s: skm.log_loss(y, np.column_stack([1 - s, s]), labels=[0, 1]),
        "brier": skm.brier_score_loss,
        "ece": ece,
    }


def _metricframe(d: dict[str, Any], rows: np.ndarray, n_boot: int) -> tuple[float, dict]:
    """Two MetricFrames per slice (labels, scores: MetricFrame passes one y_pred), plus the
    overall figures they carry."""
    import pandas as pd
    from fairlearn.metrics import MetricFrame

    start = time.perf_counter()
    out: dict[str, Any] = {}
    for name, codes in d["features"].items():
        frames = []
        for metrics, y_pred in ((_metric_functions(), d["pred"]), (_score_functions(), d["score"])):
            frames.append(
                MetricFrame(
                    metrics=metrics,
                    y_true=d["y"][rows],
                    y_pred=y_pred[rows],
                    sensitive_features=pd.Series(codes[rows], name=name),
                    n_boot=n_boot,
                    ci_quantiles=[0.025, 0.975],
                    random_state=0,
                )
            )
        out[name] = frames
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peer-rows", type=int, default=None, help="rows MetricFrame gets")
    parser.add_argument("--peer-boot", type=int, default=10, help="resamples MetricFrame runs")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_evaluate.json"))
    args = parser.parse_args()
    n = args.rows
    peer_rows = min(args.peer_rows or n, n)
    d = _data(n)

    mlplan_s, reports = _mlplan(d)
    rows = np.random.default_rng(1).choice(n, peer_rows, replace=False) if peer_rows < n else None
    peer_index = np.arange(n) if rows is None else np.sort(rows)
    frame_s, frames = _metricframe(d, peer_index, args.peer_boot)
    # MetricFrame measures once on the rows and once per resample, each at the same cost.
    scale = ((1 + BOOT) / (1 + args.peer_boot)) * (n / peer_rows)
    frame_est = frame_s * scale

    # Point values agree exactly on the peer's rows (all rows when it had them all).
    worst_point, worst_interval, compared = 0.0, 0.0, 0
    for name, (labels, scores) in frames.items():
        for frame in (labels, scores):
            for value, row in frame.by_group.iterrows():
                for metric, theirs in row.items():
                    mine = reports[name].by_group[f"{name}={value}"][metric]
                    if peer_rows == n:
                        worst_point = max(worst_point, abs(mine.value - theirs))
                    if peer_rows == n and args.peer_boot >= BOOT:
                        low, high = (frame.by_group_ci[q].loc[value, metric] for q in (0, 1))
                        width = max(mine.high - mine.low, 1e-12)
                        off = max(abs(mine.low - low), abs(mine.high - high)) / width
                        worst_interval = max(worst_interval, off)
                        compared += 1
    if worst_point > 1e-9:
        raise SystemExit(f"point values disagree by {worst_point:.2e}")
    if worst_interval > 0.35:
        raise SystemExit(f"intervals disagree by {worst_interval:.2f} of their width")

    groups = sum(len(r.by_group) for r in reports.values())
    metrics = len(reports["overall"].metrics) - 1
    print(f"bench_evaluate: {n:,} binary predictions, overall + 6 slices ({groups} groups),")
    print(f"  {metrics} metrics each with a 95% interval from {BOOT} bootstrap resamples")
    print(f"{'':<64}{'seconds':>10}")
    print(f"{'mlplan slice_metrics (overall + 6 slices)':<64}{mlplan_s:>10.2f}")
    ran = f"fairlearn MetricFrame, {args.peer_boot} resamples, {peer_rows:,} rows (ran)"
    print(f"{ran:<64}{frame_s:>10.2f}")
    est = f"fairlearn MetricFrame, {BOOT} resamples, {n:,} rows"
    label = est + (" (measured)" if scale == 1 else f" (scaled x{scale:,.1f})")
    print(f"{label:<64}{frame_est:>10.1f}")
    print(f"mlplan vs MetricFrame: {frame_est / mlplan_s:,.0f}x faster (goal >= 50x)")
    print(f"mlplan at {n:,} rows: {mlplan_s:.1f} s (goal < 20 s at 1,000,000 rows)")
    if peer_rows == n:
        print(f"point values agree (largest difference {worst_point:.1e})")
    else:
        print("point values not compared: the peer ran on a subsample")
    if compared:
        print(f"intervals agree: {compared} compared, worst end {worst_interval:.2f} of a width")
    else:
        print(f"intervals not compared: the peer ran {args.peer_boot} resamples, not {BOOT}")
    result = {
        "rows": n,
        "groups": groups,
        "bootstrap": BOOT,
        "mlplan_seconds": mlplan_s,
        "metricframe_seconds_ran": frame_s,
        "metricframe_resamples": args.peer_boot,
        "metricframe_rows": peer_rows,
        "metricframe_seconds_estimated": frame_est,
        "metricframe_scaled": scale != 1,
        "speedup_vs_metricframe": frame_est / mlplan_s,
        "max_abs_point_difference": worst_point if peer_rows == n else None,
        "worst_interval_end_over_width": worst_interval if compared else None,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
