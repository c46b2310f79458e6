"""The feature screen before training vs training the baseline, same rows, same run.

1,000,000 rows x 50 features (numbers with missing values, counts, categories of 2 to 1,000
values), a heavy-tailed amount and a rare event as targets: one regression project (baseline:
ridge) and one binary project (baseline: logistic regression) on the same table. Each has a
planted constant, a copy, a one-to-one recoding, and a feature derived from its target that
the plan allows. For each, ``train --baseline`` runs once in full; the screen alone runs on the
same training rows ``--repeat`` times. The screen's figures must agree with a pandas /
scikit-learn computation of the same measures on every training row, and it must leave out
exactly the planted columns. Goal: the screen costs under 10 % of the baseline's fit.

    python benchmarks/bench_screen.py [--rows 1000000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PLANTED = {
    "constant": "constant in the training rows (always 1)",
    "num_00_copy": "a copy of 'num_00' in the training rows",
    "cat_02_code": "a one-to-one recoding of 'cat_02' in the training rows",
}
TASKS = {
    # task: (target, the other task's columns left out, its own leak, allowed by the plan)
    "regression": ("amount", ["event", "event_note"], "log_amount"),
    "binary": ("event", ["amount", "log_amount"], "event_note"),
}


def make_data(rows: int, path: Path, seed: int = 7) -> None:
    """46 ordinary features, the planted three, a leak for each target, and both targets."""
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    signal = np.zeros(rows)
    for i in range(30):
        values = rng.normal(i, 1 + i % 4, rows)
        if i % 5 == 4:
            values = np.round(np.abs(values) * 3)  # counts
        signal += (0.3 if i < 6 else 0.02) * (values - values.mean()) / values.std()
        columns[f"num_{i:02d}"] = pa.array(values, mask=rng.random(rows) < 0.01 * (i % 4))
    for i in range(5):
        columns[f"int_{i}"] = pa.array(rng.integers(0, 11, rows))
    cardinalities = [2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 7]
    for i, cardinality in enumerate(cardinalities):
        vocabulary = np.array([f"c{i}_{k}" for k in range(cardinality)], dtype=object)
        codes = rng.zipf(1.6, rows) % cardinality
        signal += 0.15 * (codes == 0) if i < 3 else 0
        columns[f"cat_{i:02d}"] = pa.array(
            vocabulary[codes], pa.string(), mask=rng.random(rows) < 0.02 * (i % 3)
        )
    columns["constant"] = pa.array(np.ones(rows))
    columns["num_00_copy"] = columns["num_00"]
    order = {v: k for k, v in enumerate(sorted(set(columns["cat_02"].drop_null().to_pylist())))}
    columns["cat_02_code"] = pa.array(
        [None if v is None else order[v] + 1 for v in columns["cat_02"].to_pylist()], pa.int64()
    )
    amount = np.round(np.exp(3 + signal + rng.normal(0, 0.8, rows)), 2)
    event = (rng.random(rows) < 1 / (1 + np.exp(-(signal * 1.5 - 2)))).astype(np.int64)
    columns["log_amount"] = pa.array(np.log(amount))
    columns["event_note"] = pa.array(np.where(event == 1, "follow-up sent", None), pa.string())
    columns["amount"] = pa.array(amount)
    columns["event"] = pa.array(event)
    pq.write_table(pa.table(columns), path)


def project(folder: Path, data: Path, task: str) -> Any:
    """A project on ``data`` for ``task``, registered and split."""
    from mlplan.data import register_dataset, split_dataset
    from mlplan.plan import render_plan
    from mlplan.workspace import Workspace

    target, others, leak = TASKS[task]
    plan = render_plan("bench", task=task, target=target)  # type: ignore[arg-type]
    plan = plan.replace("  main:\n    path: data/main.csv", f"  main:\n    path: {data}")
    plan = plan.replace("  exclude: []", f"  exclude: [{', '.join(others)}]")
    plan = plan.replace("  allowed_features: []", f"  allowed_features: [{leak}]")
    folder.mkdir()
    (folder / "mlplan.yaml").write_text(plan)
    ws = Workspace(folder)
    register_dataset(ws, "main")
    split_dataset(ws, "main", seed=1)
    return ws


def screen_inputs(ws: Any) -> dict[str, Any]:
    """What train screens: the table, the features, the training rows and their target."""
    import pyarrow.compute as pc

    from mlplan.data import get_dataset, get_split, load_split
    from mlplan.modeling import FeatureSet, select_features, target_values

    loaded = load_split(ws, get_split(ws))
    features = select_features(ws, get_dataset(ws, "main"))
    target = ws.plan.target
    column = loaded.table.column(target)
    kind = "regression" if ws.plan.task == "regression" else "classification"
    known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
    train = np.flatnonzero((loaded.codes == 0) & known)
    return {
        "table": loaded.table,
        "features": FeatureSet(features.numeric, features.categorical, {}),
        "y": target_values(column, kind)[train],
        "rows": train,
        "kind": kind,
        "target": target,
        "allowed": ws.plan.modeling.allowed_features,
    }


def reference(inputs: dict[str, Any], names: list[str]) -> dict[str, float]:
    """The same measures by pandas and scikit-learn, on every training row: quantile bins
    (``qcut``) or categories, missing values a group of their own."""
    import pandas as pd
    from sklearn.metrics import mutual_info_score

    table = inputs["table"].take(pa.array(inputs["rows"]))
    y = inputs["y"]
    numeric = set(inputs["features"].numeric)
    if inputs["kind"] == "regression":
        target = pd.Series(y).rank().to_numpy()
    else:
        target = pd.factorize(pd.Series(y))[0]
        p = np.bincount(target) / len(target)
        entropy = float(-(p * np.log(p)).sum())
    out = {}
    for name in names:
        values = table.column(name).to_pandas()
        if name in numeric:
            values = values.astype("float64")
            bins = pd.qcut(values, 256, labels=False, duplicates="drop")
        else:
            bins = pd.Series(pd.factorize(values)[0])  # -1: missing
        codes = bins.fillna(-1).astype(np.int64).to_numpy()
        if inputs["kind"] == "regression":
            frame = pd.DataFrame({"bin": codes, "t": target})
            means = frame.groupby("bin")["t"].transform("mean").to_numpy()
            within = float(((target - means) ** 2).sum())
            total = float(((target - target.mean()) ** 2).sum())
            k, n = len(np.unique(codes)), len(codes)
            out[name] = max(0.0, 1 - (within / (n - k)) / (total / (n - 1)))
        else:
            out[name] = float(mutual_info_score(codes, target)) / entropy
    return out


def measure(ws: Any, repeat: int) -> dict[str, Any]:
    from mlplan.modeling import screen_features, train_models

    start = time.perf_counter()
    (model,) = train_models(ws, baseline=True)
    train_s = time.perf_counter() - start
    inputs = screen_inputs(ws)
    times, found = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        found = screen_features(
            inputs["table"],
            inputs["features"],
            inputs["y"],
            kind=inputs["kind"],
            target=inputs["target"],
            rows=inputs["rows"],
            allowed=inputs["allowed"],
            seed=ws.plan.modeling.seed,
        )
        times.append(time.perf_counter() - start)
    assert found is not None
    # The same screen as train's, and the planted columns exactly.
    if found.to_dict() != model.features["screen"]:
        raise SystemExit(f"{model.family}: the screen differs from train's")
    if found.left_out != PLANTED:
        raise SystemExit(f"left out {found.left_out}, expected {PLANTED}")
    leak = TASKS[ws.plan.task][2]
    if found.allowed_leaky.keys() != {leak}:
        raise SystemExit(f"allowed leaks {found.allowed_leaky}, expected {leak}")
    theirs = reference(inputs, list(found.explains))
    differences = {name: abs(found.explains[name] - theirs[name]) for name in theirs}
    farthest = max(differences, key=differences.__getitem__)
    worst = differences[farthest]
    if worst > 0.02:
        raise SystemExit(
            f"figures disagree by {worst:.3f} with pandas / scikit-learn on {farthest!r}: "
            f"{found.explains[farthest]:.4f} vs {theirs[farthest]:.4f}"
        )
    return {
        "family": model.family,
        "features": len(inputs["features"].columns),
        "training_rows": len(inputs["rows"]),
        "screen_seconds": times,
        "fit_seconds": model.seconds,
        "train_seconds": train_s,
        "leak_figure": found.allowed_leaky[leak],
        "max_abs_difference": worst,
        "farthest_feature": farthest,
        "figures": {name: [found.explains[name], theirs[name]] for name in theirs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_screen.json"))
    args = parser.parse_args()

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.parquet"
        make_data(args.rows, data)
        for task in TASKS:
            ws = project(Path(tmp) / task, data, task)
            try:
                results[task] = measure(ws, args.repeat)
            finally:
                ws.close()

    print(f"bench_screen: {args.rows:,} rows x 50 features; results agree with pandas / sklearn")
    print(
        f"{'task (baseline)':<26}{'screen s':>10}{'fit s':>10}{'train s':>10}"
        f"{'screen/fit':>12}{'screen/train':>14}"
    )
    goals = {}
    for task, r in results.items():
        screen = statistics.median(r["screen_seconds"])
        r["ratio_to_fit"] = screen / r["fit_seconds"]
        r["ratio_to_train"] = screen / r["train_seconds"]
        goals[f"{task}: screen < 10% of the baseline's fit"] = r["ratio_to_fit"] < 0.10
        print(
            f"{task + ' (' + r['family'] + ')':<26}{screen:>10.3f}{r['fit_seconds']:>10.2f}"
            f"{r['train_seconds']:>10.2f}{r['ratio_to_fit']:>11.1%}{r['ratio_to_train']:>13.1%}"
        )
    print("goal: screen < 10% of the baseline's fit (fit, predictions and ONNX export)")
    for task, r in results.items():
        print(
            f"  {task}: {r['training_rows']:,} training rows, {r['features']} features; planted "
            f"leak explains {r['leak_figure']:.4f}; largest difference from the reference "
            f"{r['max_abs_difference']:.4f} ({r['farthest_feature']})"
        )
    report = {"rows": args.rows, "features": 50, **results, "goals": goals}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
