"""Shared by the modeling tests: a time series project for the sequence families."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from tests.conftest import write_csv

from mlplan.data import register_dataset, split_dataset
from mlplan.workspace import Workspace

WINDOW = 6
"""The projects' ``modeling.window``: it sees the two hours back that the load follows, and
the PyTorch exporter unrolls the recurrent families over every step of it (at 12 steps,
exporting was most of a sequence test's time)."""


def sequence_series(rows: int = 360, seed: int = 3) -> pa.Table:
    """Hourly load that follows the temperature two hours back, unordered in the file, with a
    missing value and a day/night state."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    temperature = 10 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, rows)
    load = (
        50 + 0.8 * np.roll(temperature, 2) + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, rows)
    )
    load[7] = np.nan  # a missing value inside some windows
    state = np.where(np.sin(2 * np.pi * t / 24) > 0, "day", "night")
    order = rng.permutation(rows)  # the file is not in time order
    return pa.table(
        {
            "t": pa.array(t[order], pa.int64()),
            "temperature": pa.array(temperature[order]),
            "load": pa.array(load[order]),
            "state": pa.array(state[order]),
        }
    )


def sequence_workspace(
    tmp_path: Path,
    store_url: str,
    *,
    target: str,
    ordered: bool = True,
    table: pa.Table | None = None,
) -> Workspace:
    """A sequence project on ``target`` (``load`` or ``state``), registered and split by time."""
    write_csv(sequence_series() if table is None else table, tmp_path / "data" / "series.csv")
    (tmp_path / "mlplan.yaml").write_text(
        f"""project: {{name: grid, key: grid-{target}}}
task: sequence
target: {target}
datasets:
  series:
    path: data/series.csv
{"    time_column: t" if ordered else ""}
modeling:
  window: {WINDOW}
  seed: 0
  hyperparameters:
    rnn: {{epochs: 15, hidden: 16}}
"""
    )
    ws = Workspace(tmp_path, store_url=store_url)
    register_dataset(ws, "series")
    split_dataset(ws, "series", time="t")
    return ws
