from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import edit_plan, register_split_train, write_csv

from mlplan.plan import render_plan
from mlplan.workspace import Workspace

SLICES = """slices:
  - {name: gender, columns: [gender]}
  - {name: region, columns: [region]}
  - {name: age, column: age, bins: [18, 40, 65, 91]}
  - {name: seniors, where: "age >= 65"}
"""
RISKS = """risks:
  - {id: west-ignored, description: The west is scored badly., slice: region, metric: accuracy,
     threshold: 0.05}
  - {id: women-missed, description: Recall is lower for women., slice: gender, metric: recall}
  - {id: drift, description: Charges drift after a price change., monitor: input-drift}
"""
GATES = """gates:
  slice_floors:
    - {slice: region, metric: accuracy, min: 0.7}
  max_gaps:
    - {slice: gender, metric: recall, max_gap: 0.5}
  no_regression: []
"""


def churn_table(rows: int = 1600, seed: int = 3) -> pa.Table:
    """Churn that follows charges and age, except in the west, where it goes the other way:
    a planted failure for slices, focus and discovery to find."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east", "west"], rows, p=[0.3, 0.3, 0.25, 0.15])
    age = rng.integers(18, 90, rows)
    charges = rng.normal(60, 20, rows).round(2)
    logit = 0.2 * (charges - 60) - 0.08 * (age - 50)
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    west = region == "west"
    churned[west] = rng.random(west.sum()) < 1 / (1 + np.exp(logit[west]))
    return pa.table(
        {
            "customer_id": np.arange(1, rows + 1),
            "name": [f"Person {i}" for i in range(rows)],
            "gender": rng.choice(["female", "male"], rows),
            "region": region,
            "age": age,
            "charges": charges,
            "churned": churned.astype(np.int64),
        }
    )


def plan_text(task: str = "binary", target: str = "churned") -> str:
    plan = render_plan("churn", task=task, target=target)
    plan = plan.replace(
        "  main:\n    path: data/main.csv", "  customers:\n    path: data/customers.csv"
    )
    plan = plan.replace("    pii_columns: null", "    pii_columns: [name]")
    plan = plan.replace("    id_column: null", "    id_column: customer_id")
    plan = re.sub(r"^slices: \[\].*\n", SLICES, plan, flags=re.M)
    plan = re.sub(r"^risks: null.*\n", RISKS, plan, flags=re.M)
    plan = re.sub(r"^gates:\n(  .*\n)+", GATES, plan, flags=re.M)
    plan = plan.replace("  bootstrap: 200", "  bootstrap: 60")
    return plan


@pytest.fixture
def eval_dir(tmp_path: Path) -> Path:
    write_csv(churn_table(), tmp_path / "data" / "customers.csv")
    (tmp_path / "mlplan.yaml").write_text(plan_text())
    return tmp_path


@pytest.fixture
def trained(eval_dir: Path) -> Iterator[Workspace]:
    """A workspace with the customers split and a logistic model, logistic-1."""
    ws = register_split_train(Workspace(eval_dir), id_column=None)  # the plan names it
    yield ws
    ws.close()


@pytest.fixture
def editor() -> Callable[[Workspace, str, str], None]:
    return edit_plan
