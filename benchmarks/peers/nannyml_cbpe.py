"""NannyML's CBPE on the scores bench_estimate.py wrote: run by the NannyML virtualenv's
Python (``build/bench-nannyml``), never imported by mlplan.

    python nannyml_cbpe.py SCORES.npz OUT.json REPEAT

For each case (binary, multiclass) it fits CBPE on the reference rows (its isotonic
calibration and sampling errors) and estimates one chunk holding every analysis row, REPEAT
times each, and writes the medians and the estimates (value and NannyML's confidence band,
three standard errors wide each side).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
import nannyml as nml  # noqa: E402

METRICS = {
    "binary": {"roc_auc": "roc_auc", "f1": "f1", "accuracy": "accuracy"},
    "multiclass": {
        "accuracy": "accuracy",
        "f1": "macro_f1",
        "precision": "macro_precision",
        "recall": "macro_recall",
    },
}


def _frames(data: Any, case: str) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    classes = [str(c) for c in data[f"{case}_classes"]]
    frames = []
    for part in ("reference", "analysis"):
        proba = data[f"{case}_{part}_proba"]
        frame = pd.DataFrame({f"p_{c}": proba[:, k] for k, c in enumerate(classes)})
        frame["y_pred"] = np.asarray(classes)[data[f"{case}_{part}_pred"]]
        if part == "reference":
            frame["y_true"] = np.asarray(classes)[data[f"{case}_reference_true"]]
        frames.append(frame)
    if case == "binary":
        frames = [f.assign(y_pred=(f["y_pred"] == classes[1]).astype(int)) for f in frames]
        frames[0]["y_true"] = (frames[0]["y_true"] == classes[1]).astype(int)
        proba: Any = f"p_{classes[1]}"
    else:
        proba = {c: f"p_{c}" for c in classes}
    return frames[0], frames[1], proba


def main() -> None:
    path, out, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = np.load(path)
    results: dict[str, Any] = {"version": nml.__version__}
    for case in ("binary", "multiclass"):
        reference, analysis, proba = _frames(data, case)
        fits, estimates, result = [], [], None
        for _ in range(repeat):
            start = time.perf_counter()
            estimator = nml.CBPE(
                y_pred_proba=proba,
                y_pred="y_pred",
                y_true="y_true",
                problem_type=f"classification_{case}",
                metrics=list(METRICS[case]),
                chunk_number=1,
            )
            estimator.fit(reference)
            fits.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = estimator.estimate(analysis).to_df()
            estimates.append(time.perf_counter() - start)
        assert result is not None
        row = result.iloc[0]
        results[case] = {
            "fit_s": statistics.median(fits),
            "estimate_s": statistics.median(estimates),
            "metrics": {
                ours: {
                    "value": float(row[(theirs, "value")]),
                    "low": float(row[(theirs, "lower_confidence_boundary")]),
                    "high": float(row[(theirs, "upper_confidence_boundary")]),
                }
                for theirs, ours in METRICS[case].items()
            },
        }
    Path(out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
