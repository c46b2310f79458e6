"""Krippendorff's alpha on 1,000,000 annotations: mlplan vs the `krippendorff` package, same
data, same run; and Dawid–Skene EM time and iterations to convergence.

200,000 items, 50 annotators, 5 classes; each item labeled by 5 annotators of different
accuracy (one careless). Each library gets its natural input: mlplan the long table of
(item, annotator, label) — encoding included in its time — and `krippendorff` the
annotators × items matrix with NaN for missing. The alphas must agree to 1e-9.

    python benchmarks/bench_agreement.py [--items 200000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def make_data(
    items: int, annotators: int, classes: int, per_item: int, seed: int = 7
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    item = np.repeat(np.arange(items), per_item)
    who = np.argsort(rng.random((items, annotators)), axis=1)[:, :per_item].ravel()
    accuracy = np.linspace(0.6, 0.95, annotators)
    accuracy[0] = 0.3  # the careless one
    truth = rng.integers(0, classes, items)
    label = np.where(
        rng.random(item.size) < accuracy[who], truth[item], rng.integers(0, classes, item.size)
    )
    return item, who, label, truth


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--per-item", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/bench_agreement.json")
    )
    args = parser.parse_args()

    import krippendorff

    from mlplan.labels import AnnotationSet, dawid_skene, krippendorff_alpha, majority_vote

    item, who, label, truth = make_data(args.items, args.annotators, args.classes, args.per_item)
    n = item.size
    matrix = np.full((args.annotators, args.items), np.nan)
    matrix[who, item] = label

    def ours() -> float:
        annotations = AnnotationSet.from_records(item, who, label)
        return krippendorff_alpha(annotations, level="nominal").value

    encoded = AnnotationSet.from_records(item, who, label)
    ours_s, ours_alpha = timed(ours, args.repeat)
    core_s, _ = timed(lambda: krippendorff_alpha(encoded, level="nominal").value, args.repeat)
    theirs_s, theirs_alpha = timed(
        lambda: krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"),
        args.repeat,
    )
    difference = abs(float(ours_alpha) - float(theirs_alpha))  # type: ignore[arg-type]
    if difference > 1e-9:
        raise SystemExit(f"alphas disagree: mlplan {ours_alpha}, krippendorff {theirs_alpha}")

    ordinal_ours, ordinal_alpha = timed(
        lambda: krippendorff_alpha(encoded, level="ordinal").value, 1
    )
    ordinal_theirs, ordinal_ref = timed(
        lambda: krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal"), 1
    )
    if abs(float(ordinal_alpha) - float(ordinal_ref)) > 1e-9:  # type: ignore[arg-type]
        raise SystemExit(f"ordinal alphas disagree: {ordinal_alpha} vs {ordinal_ref}")

    start = time.perf_counter()
    consensus = dawid_skene(encoded)
    ds_s = time.perf_counter() - start
    items_true = truth[np.asarray(encoded.items, dtype=np.int64)]
    class_values = np.asarray(encoded.classes, dtype=np.int64)
    ds_accuracy = float((class_values[consensus.label] == items_true).mean())
    mv = majority_vote(encoded, ties="random")
    mv_accuracy = float((class_values[mv.label] == items_true).mean())

    speedup = theirs_s / ours_s
    print(
        f"bench_agreement: {n:,} annotations, {args.items:,} items, {args.annotators} "
        f"annotators, {args.classes} classes; alphas agree (|diff| {difference:.1e})"
    )
    print(f"{'measure':<44} {'mlplan':>10} {'krippendorff':>13}  ratio")
    print(
        f"{'nominal alpha, seconds (median)':<44} {ours_s:>10.3f} {theirs_s:>13.3f}  "
        f"krippendorff/mlplan = {speedup:.1f}x (goal >= 1x)"
    )
    print(f"{'  of which alpha from encoded labels':<44} {core_s:>10.3f}")
    print(
        f"{'ordinal alpha, seconds':<44} {ordinal_ours:>10.3f} {ordinal_theirs:>13.3f}  "
        f"{ordinal_theirs / ordinal_ours:.1f}x"
    )
    print(
        f"{'Dawid-Skene EM, seconds (goal < 30)':<44} {ds_s:>10.3f}  "
        f"{consensus.iterations} iterations, converged={consensus.converged}"
    )
    print(f"{'consensus accuracy vs truth':<44} DS {ds_accuracy:.4f} · majority {mv_accuracy:.4f}")
    report = {
        "annotations": n,
        "items": args.items,
        "annotators": args.annotators,
        "classes": args.classes,
        "alpha": ours_alpha,
        "alpha_difference": difference,
        "mlplan_seconds": ours_s,
        "mlplan_core_seconds": core_s,
        "krippendorff_seconds": theirs_s,
        "speedup": speedup,
        "ordinal_mlplan_seconds": ordinal_ours,
        "ordinal_krippendorff_seconds": ordinal_theirs,
        "dawid_skene_seconds": ds_s,
        "dawid_skene_iterations": consensus.iterations,
        "converged": consensus.converged,
        "dawid_skene_accuracy": ds_accuracy,
        "majority_accuracy": mv_accuracy,
        "goals": {"alpha at least as fast": speedup >= 1, "dawid-skene < 30 s": ds_s < 30},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
