"""Simulate a round of annotation for the churn example (seeded; nothing is downloaded).

Each annotator of a labeling batch labels their rows: careful ones agree with the truth most of
the time, one careless annotator often does not and works much faster. The truth is the
`churned` column of the data.

    python examples/churn/simulate_annotations.py BATCH.csv DATA.csv OUT.csv [--seed 7]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

# Accuracy and seconds per label of each annotator, by position in the batch's roster.
PROFILES = [(0.96, 45.0), (0.93, 38.0), (0.9, 52.0), (0.62, 9.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("batch", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with args.data.open(newline="") as fh:
        truth = {row["customer_id"]: row["churned"] for row in csv.DictReader(fh)}
    with args.batch.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    roster = sorted({r["annotator"] for r in rows})
    profile = {name: PROFILES[i % len(PROFILES)] for i, name in enumerate(roster)}
    for row in rows:
        accuracy, seconds = profile[row["annotator"]]
        true = truth[row["item_id"]]
        row["label"] = true if rng.random() < accuracy else ("1" if true == "0" else "0")
        row["seconds"] = f"{max(2.0, rng.normal(seconds, seconds / 4)):.1f}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    careless = roster[3] if len(roster) > 3 else roster[-1]
    print(
        f"simulated {len(rows):,} labels by {len(roster)} annotators "
        f"({careless} is careless) → {args.out}"
    )


if __name__ == "__main__":
    main()
