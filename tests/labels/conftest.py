"""Fixtures for the Labels tests: a registered project, plan edits, and simulated annotators
whose labels are the customers' true ``churned`` values, right with a chosen probability."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import customers_table

from mlplan.data import register_dataset
from mlplan.workspace import Workspace

# The true label of each row of data/customers.csv (item ids are row numbers: the template
# plan has id_column: null).
TRUTH: list[int] = customers_table().column("churned").to_pylist()


def fill_batch(batch_file: Path, out: Path, *, bob_wrong_every: int) -> Path:
    """A batch file labeled as two annotators would: 'ann' always right, 'bob' wrong on every
    ``bob_wrong_every``-th item he sees; written to ``out``."""
    with batch_file.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    seen = 0
    for row in rows:
        truth = TRUTH[int(row["item_id"])]
        if row["annotator"] == "bob":
            seen += 1
            truth = 1 - truth if seen % bob_wrong_every == 0 else truth
        row["label"], row["seconds"] = str(truth), "12"
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


EditPlan = Callable[[str, str], None]
Simulate = Callable[..., list[dict[str, Any]]]
WriteRows = Callable[..., Path]


@pytest.fixture
def edit_plan(project_dir: Path) -> EditPlan:
    """Replace text in the project's mlplan.yaml (before the workspace first reads the plan)."""

    def edit(old: str, new: str) -> None:
        plan = project_dir / "mlplan.yaml"
        text = plan.read_text()
        assert old in text, old
        plan.write_text(text.replace(old, new, 1))

    return edit


@pytest.fixture
def registered(ws: Workspace) -> Workspace:
    """``ws`` with data/customers.csv registered as customers@1."""
    register_dataset(ws, "customers")
    return ws


def simulate_labels(
    items: Iterable[int],
    accuracy: Mapping[str, float],
    *,
    per_item: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows (item_id, annotator, label, seconds): each item labeled by ``per_item`` distinct
    annotators drawn at random (all of them when None); each right with its ``accuracy``."""
    rng = np.random.default_rng(seed)
    names = list(accuracy)
    rows = []
    for item in items:
        chosen = names if per_item is None else list(rng.choice(names, per_item, replace=False))
        for name in chosen:
            truth = TRUTH[item]
            label = truth if rng.random() < accuracy[name] else 1 - truth
            rows.append(
                {
                    "item_id": str(item),
                    "annotator": str(name),
                    "label": str(label),
                    "seconds": float(rng.integers(5, 40)),
                }
            )
    return rows


@pytest.fixture
def simulate() -> Simulate:
    """:func:`simulate_labels`."""
    return simulate_labels


@pytest.fixture
def write_rows(tmp_path: Path) -> WriteRows:
    """Write rows (dicts) as an annotation CSV in tmp_path; returns its path."""

    def write(rows: list[dict[str, Any]], name: str = "labels.csv") -> Path:
        path = tmp_path / name
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return path

    return write
