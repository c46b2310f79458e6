"""Training end to end: ``mlplan train`` vs a plain scikit-learn / LightGBM fit.

The churn example's table (examples/churn/generate.py) with ``--rows`` training rows (70% of the
table: the split keeps 10% for validation and 20% for test), registered and split outside the
timing. Timed, in this process: ``train --baseline`` (logistic regression) and ``train --family
gbt`` through the Python API the CLI calls — loading the split, fitting, scoring every split,
ONNX export, parity, the compute profile and registration — and the plain peers on the same
training rows, already in memory as a pandas frame: a scikit-learn pipeline with the same
preprocessing (median imputation and scaling of the numbers, one-hot encoding of the
categories) and the same LogisticRegression, and the same preprocessing (no scaling) with
LightGBM's LGBMClassifier and mlplan's parameters. Each peer's test ROC AUC must agree with
the registered model's within 1e-3. Goal: each ``train`` at most 1.5x its peer's fit. Each
peer is timed right after its ``train``; with ``--repeat`` each pair runs again and the
fastest of each side is kept (all runs are in the JSON).

Like with like: both sides run in this process, every library either uses (scikit-learn,
LightGBM, and mlplan's ONNX ones) imported before any timing. As separate processes,
``mlplan train`` also imports mlplan's store and plan (SQLAlchemy, pydantic) and the ONNX
converters, a second or two that does not grow with the rows; a plain script imports
scikit-learn (most of its start-up, through SciPy) as mlplan does.

    python benchmarks/bench_train.py [--rows 1400000] [--repeat 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHURN = ROOT / "examples" / "churn"
TRAIN_SHARE = 0.7  # the split below: 10% valid, 20% test


def _project(folder: Path, rows: int) -> Any:
    """The churn project with a table of ``rows`` rows, registered and split."""
    import pyarrow.csv as pcsv

    import mlplan

    spec = importlib.util.spec_from_file_location("churn_generate", CHURN / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    (folder / "data").mkdir(parents=True)
    pcsv.write_csv(generate.customers(rows, 7), folder / "data" / "customers.csv")
    shutil.copy(CHURN / "mlplan.yaml", folder / "mlplan.yaml")
    ws = mlplan.Workspace(folder)
    mlplan.register_dataset(ws, "customers")
    mlplan.split_dataset(
        ws, "customers", test=0.2, valid=0.1, stratify="churned", group="customer_id", seed=7
    )
    return ws


def _peer_frames(ws: Any, model: Any) -> dict[str, Any]:
    """The model's training and test rows and its features, as a plain pandas frame (numbers
    as the float32 values the package reads, missing categories as one value)."""
    import pyarrow as pa

    from mlplan.data import get_split, load_split

    loaded = load_split(ws, get_split(ws))
    numeric, categorical = model.features["numeric"], model.features["categorical"]
    target = loaded.table.column("churned").to_numpy(zero_copy_only=False)
    out = {}
    for code, name in ((0, "train"), (2, "test")):
        rows = np.flatnonzero(loaded.codes == code)
        frame = loaded.table.take(pa.array(rows)).select(numeric + categorical).to_pandas()
        for column in numeric:
            frame[column] = frame[column].astype(np.float32)
        for column in categorical:
            frame[column] = frame[column].fillna("(missing)").astype(str).astype(object)
        out[name] = (frame, target[rows].astype(int))
    return out


def _peer(estimator: Any, numeric: list[str], categorical: list[str], scaled: bool) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scaled:
        numbers.append(("scale", StandardScaler()))
    prepare = ColumnTransformer(
        [
            ("num", Pipeline(numbers), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", estimator)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_400_000, help="training rows")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_train.json"))
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each, the fastest kept (shared machines)"
    )
    args = parser.parse_args()

    import lightgbm
    import onnx  # noqa: F401  (imports out of the timing)
    import onnxmltools  # noqa: F401
    import onnxruntime  # noqa: F401
    import skl2onnx  # noqa: F401
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from mlplan.modeling import train_model

    table_rows = round(args.rows / TRAIN_SHARE)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ws = _project(Path(tmp) / "churn", table_rows)
        setup_s = time.perf_counter() - start

        seed = ws.plan.modeling.seed
        kwargs = {"logistic": {"baseline": True}, "gbt": {"family": "gbt"}}
        times: dict[str, list[float]] = {"logistic": [], "gbt": []}
        peer_times: dict[str, list[float]] = {"logistic": [], "gbt": []}
        models: dict[str, Any] = {}
        frames: dict[str, Any] = {}
        peers: dict[str, Any] = {}
        for _ in range(args.repeat):
            for name in ("logistic", "gbt"):
                start = time.perf_counter()
                models[name] = train_model(ws, **kwargs[name])
                times[name].append(time.perf_counter() - start)
                if not frames:  # the features the first model chose, out of the timing
                    frames = _peer_frames(ws, models["logistic"])
                    numeric = models["logistic"].features["numeric"]
                    categorical = models["logistic"].features["categorical"]
                estimator = (
                    LogisticRegression(max_iter=1000)
                    if name == "logistic"
                    else lightgbm.LGBMClassifier(
                        n_estimators=100, random_state=seed, n_jobs=1, verbose=-1
                    )
                )
                peers[name] = _peer(estimator, numeric, categorical, name == "logistic")
                start = time.perf_counter()  # the peer right after: both under the same load
                peers[name].fit(*frames["train"])
                peer_times[name].append(time.perf_counter() - start)
        x_test, y_test = frames["test"]
        y_train = frames["train"][1]
        timings = {name: min(t) for name, t in times.items()}
        peer_s = {name: min(t) for name, t in peer_times.items()}
        agreement: dict[str, float] = {}
        for name, pipe in peers.items():
            auc = float(roc_auc_score(y_test, pipe.predict_proba(x_test)[:, 1]))
            agreement[name] = abs(auc - models[name].metrics["test"]["roc_auc"])
        ws.close()

    print(
        f"bench_train: churn table, {table_rows:,} rows ({len(y_train):,} training, "
        f"{len(y_test):,} test; registered and split in {setup_s:.1f} s, not timed)"
    )
    print(f"{'':<44}{'seconds':>10}{'ratio':>8}")
    result: dict[str, Any] = {"rows": table_rows, "train_rows": len(y_train)}
    worst = 0.0
    for name, label in (("logistic", "train --baseline (logistic)"), ("gbt", "train --family gbt")):
        ratio = timings[name] / peer_s[name]
        worst = max(worst, ratio)
        peer = "scikit-learn pipeline fit" if name == "logistic" else "LightGBM fit (same prep)"
        print(f"{'mlplan ' + label:<44}{timings[name]:>10.2f}{ratio:>7.2f}x")
        print(f"{'  plain ' + peer:<44}{peer_s[name]:>10.2f}")
        parity = models[name].parity
        result[name] = {
            "mlplan_seconds": timings[name],
            "peer_seconds": peer_s[name],
            "mlplan_runs": times[name],
            "peer_runs": peer_times[name],
            "ratio": ratio,
            "test_auc_difference": agreement[name],
            "parity_rows": parity.get("rows"),
            "parity_checked": parity.get("checked"),
        }
    print("goal: each train at most 1.5x its peer's fit")
    print(
        "test ROC AUC agrees with the peer's: "
        + ", ".join(f"{k} {v:.1e}" for k, v in agreement.items())
    )
    if max(agreement.values()) > 1e-3:
        raise SystemExit(f"models disagree: test AUC differences {agreement}")
    result["worst_ratio"] = worst
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
