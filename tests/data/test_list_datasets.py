"""``list_datasets`` (``mlplan data list``): each dataset with its number of versions and its
latest one, read in a fixed number of queries however many datasets there are."""

from __future__ import annotations

import sqlalchemy as sa
from tests.conftest import customers_table, write_csv

from mlplan.data import list_datasets, register_dataset
from mlplan.workspace import Workspace


def test_each_dataset_comes_with_its_count_of_versions_and_its_latest(ws: Workspace) -> None:
    register_dataset(ws, "customers")
    for seed in (1, 2):  # two more versions of "another"
        path = write_csv(customers_table(20 + seed, seed=seed), ws.root / f"b{seed}.csv")
        register_dataset(ws, "another", path)
    register_dataset(ws, "third", write_csv(customers_table(10), ws.root / "c.csv"))

    found = [(s.name, s.versions, s.latest and s.latest.ref, s.in_plan) for s in list_datasets(ws)]

    assert found == [
        ("customers", 1, "customers@1", True),
        ("another", 2, "another@2", False),
        ("third", 1, "third@1", False),
    ]
    (another,) = [s for s in list_datasets(ws) if s.name == "another"]
    assert another.latest is not None and another.latest.rows == 22


def test_the_queries_do_not_grow_with_the_datasets(ws: Workspace) -> None:
    def queries() -> int:
        seen: list[str] = []

        def count(*args: object) -> None:
            seen.append(str(args[2]))

        sa.event.listen(ws.store.engine, "before_cursor_execute", count)
        try:
            list_datasets(ws)
        finally:
            sa.event.remove(ws.store.engine, "before_cursor_execute", count)
        return len(seen)

    register_dataset(ws, "customers")
    one = queries()
    for i in range(5):
        register_dataset(ws, f"d{i}", write_csv(customers_table(10 + i), ws.root / f"d{i}.csv"))
    assert queries() == one
