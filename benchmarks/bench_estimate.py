"""Performance estimated before labels: mlplan vs NannyML's CBPE, same scores, same run.

Two cases: a binary model (about a quarter positive, decision threshold 0.5) with ROC AUC,
F1 and accuracy, and a three-class one with accuracy and the macro precision, recall and
F1. Both fit their calibration on the same reference (validation) rows, then estimate one
window holding every analysis row. The estimates must agree: each tool's value inside the
other's interval (mlplan's: where 95 % of realised values fall; NannyML's: three standard
errors each side). Goal: mlplan's estimate at least 10x faster than NannyML's.

NannyML lives in its own virtual environment (``build/bench-nannyml``, made on first run
and reused after; its usage reports off); it runs ``benchmarks/peers/nannyml_cbpe.py`` on the
scores written here. Each side's time is the median of ``--repeat`` runs; the calibration's
fit (at training time for mlplan) is shown apart from the estimate.

    python benchmarks/bench_estimate.py [--rows 1000000] [--reference 100000] [--repeat 3]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import _ensure_venv

ROOT = Path(__file__).resolve().parents[1]
PEER = Path(__file__).resolve().parent / "peers" / "nannyml_cbpe.py"
NANNYML_VENV = ROOT / "build" / "bench-nannyml"
# nannyml 0.13.1 (Apache-2.0) imports statsmodels without requiring it, and predates
# pandas 3.
NANNYML = ["nannyml==0.13.1", "statsmodels==0.15.0", "pandas==2.3.3"]
CLASSES = {"binary": ["no", "yes"], "multiclass": ["cat", "dog", "fox"]}
METRICS = {
    "binary": ["roc_auc", "f1", "accuracy"],
    "multiclass": ["accuracy", "macro_f1", "macro_precision", "macro_recall"],
}


def _scores(rng: np.random.Generator, case: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores of ``n`` rows and true classes drawn from them."""
    if case == "binary":
        p = 1.0 / (1.0 + np.exp(-rng.normal(-1.3, 1.6, size=n)))
        return np.column_stack([1 - p, p]), (rng.random(n) < p).astype(np.int64)
    logits = rng.normal(size=(n, 3)) * 1.4 + np.array([0.4, 0.0, -0.5])
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    return proba, (rng.random(n)[:, None] >= np.cumsum(proba, axis=1)[:, :-1]).sum(axis=1)


def _predicted(case: str, proba: np.ndarray) -> np.ndarray:
    return (proba[:, 1] >= 0.5).astype(np.int64) if case == "binary" else proba.argmax(axis=1)


def _mlplan(data: dict[str, np.ndarray], case: str, repeat: int) -> dict[str, Any]:
    from mlplan.monitoring import estimate_performance, fit_calibration

    classes = CLASSES[case]
    labels = np.asarray(classes)[data[f"{case}_reference_true"]]
    fits, estimates, result = [], [], None
    for _ in range(repeat):
        start = time.perf_counter()
        calibration = fit_calibration(data[f"{case}_reference_proba"], labels, classes)
        fits.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = estimate_performance(
            data[f"{case}_analysis_proba"], calibration=calibration, metrics=METRICS[case]
        )
        estimates.append(time.perf_counter() - start)
    assert result is not None
    return {
        "fit_s": statistics.median(fits),
        "estimate_s": statistics.median(estimates),
        "draws": result.draws,
        "metrics": {name: e.to_dict() for name, e in result.estimates.items()},
    }


def _inside(value: float | None, band: dict[str, Any]) -> bool:
    return value is not None and band["low"] <= value <= band["high"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_estimate.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(15)
    data: dict[str, np.ndarray] = {}
    for case, classes in CLASSES.items():
        data[f"{case}_classes"] = np.asarray(classes)
        for part, n in (("reference", args.reference), ("analysis", args.rows)):
            proba, truth = _scores(rng, case, n)
            data[f"{case}_{part}_proba"] = proba
            data[f"{case}_{part}_pred"] = _predicted(case, proba)
            data[f"{case}_{part}_true"] = truth

    python = _ensure_venv(NANNYML_VENV, NANNYML)
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as folder:
        scores, out = Path(folder) / "scores.npz", Path(folder) / "nannyml.json"
        np.savez(scores, **data)
        # NannyML's usage reports off (it posts them to segment.io otherwise).
        quiet = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        subprocess.run([str(python), str(PEER), str(scores), str(out), str(args.repeat)],
                       check=True, env=quiet)  # fmt: skip
        theirs = json.loads(out.read_text())

    report: dict[str, Any] = {"rows": args.rows, "reference": args.reference,
                              "nannyml": theirs["version"], "cases": {}}  # fmt: skip
    agree = True
    for case in CLASSES:
        ours = _mlplan(data, case, args.repeat)
        realised = _realised(data, case)
        print(f"\n{case}: {args.rows:,} rows ({ours['draws']} draws), "
              f"reference {args.reference:,}")  # fmt: skip
        print(f"  {'metric':<16}{'realised':>9}  {'mlplan [95 %]':<28}{'NannyML [3 se]':<28}")
        for name in METRICS[case]:
            m, t = ours["metrics"][name], theirs[case]["metrics"][name]
            both = _inside(m["value"], t) and _inside(t["value"], m)
            agree &= both
            print(f"  {name:<16}{realised[name]:>9.4f}  "
                  f"{m['value']:.4f} [{m['low']:.4f}, {m['high']:.4f}]    "
                  f"{t['value']:.4f} [{t['low']:.4f}, {t['high']:.4f}]    "
                  f"{'agree' if both else 'DISAGREE'}")  # fmt: skip
        speedup = theirs[case]["estimate_s"] / ours["estimate_s"]
        print(
            f"  estimate: mlplan {ours['estimate_s'] * 1e3:.0f} ms, NannyML "
            f"{theirs[case]['estimate_s'] * 1e3:.0f} ms: {speedup:.1f}x (goal >= 10x)"
        )
        print(f"  calibration fit: mlplan {ours['fit_s'] * 1e3:.0f} ms, NannyML fit "
              f"{theirs[case]['fit_s'] * 1e3:.0f} ms")  # fmt: skip
        report["cases"][case] = {"mlplan": ours, "nannyml": theirs[case],
                                 "realised": realised, "speedup": speedup}  # fmt: skip
    report["agree"] = agree
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nestimates agree: {agree}; written to {args.json}")
    if not agree:
        raise SystemExit(1)


def _realised(data: dict[str, np.ndarray], case: str) -> dict[str, float]:
    """The metrics on the analysis rows' true classes, by mlplan's metric engine."""
    from mlplan.modeling import Predictions, aggregate

    classes = CLASSES[case]
    names = np.asarray(classes)
    proba = data[f"{case}_analysis_proba"]
    truth = names[data[f"{case}_analysis_true"]]
    predicted = names[data[f"{case}_analysis_pred"]]
    predictions = Predictions.from_arrays(
        truth, predicted, proba=proba, classes=classes, kind="binary", positive=classes[-1]
    )
    n = len(truth)
    values = aggregate(predictions, np.arange(n), np.zeros(n, dtype=np.int64), 1, METRICS[case])
    return {name: float(values[name][0]) for name in METRICS[case]}


if __name__ == "__main__":
    main()
