"""The rollouts tables on SQLite and PostgreSQL: migration 0008 up and down, and the one
active rollout per deployment that the database itself holds."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import evaluated, migrated, register_split_train

from mlplan.modeling import train_model
from mlplan.rollout import move_rollout, start_rollout
from mlplan.store import RolloutRecord, open_store
from mlplan.workspace import Workspace


def test_migration_0008_adds_the_rollout_tables_and_removes_them(
    store_url: str, tmp_path: Path
) -> None:
    with migrated(store_url, "0007") as connection:
        assert not sa.inspect(connection).has_table("rollouts")
    store = open_store(tmp_path, url=store_url)  # to head on open
    with store.engine.connect() as connection:
        inspector = sa.inspect(connection)
        assert inspector.has_table("rollouts") and inspector.has_table("rollout_events")
        unique = inspector.get_unique_constraints("rollouts")
        assert [c["column_names"] for c in unique] == [["deployment_id", "active"]]
    store.close()
    with migrated(store_url, "0007", down=True) as connection:
        assert not sa.inspect(connection).has_table("rollouts")
        assert not sa.inspect(connection).has_table("rollout_events")


def test_one_active_rollout_per_deployment_on_each_backend(ws: Workspace) -> None:
    register_split_train(ws)
    start_rollout(ws, evaluated(ws), by="Priya")
    train_model(ws, family="logistic", seed=2)
    evaluated(ws, "logistic-2")
    for _ in range(2):  # ended rollouts (active NULL) never collide
        start_rollout(ws, "logistic-2", strategy="canary")
        move_rollout(ws, "production", "abort", by="Ana")
    _, rollout = start_rollout(ws, "logistic-2", strategy="shadow")
    with ws.store.engine.connect() as connection:
        row = connection.execute(
            sa.select(RolloutRecord.__table__).where(RolloutRecord.id == rollout.id)
        ).one()
        twin = {k: v for k, v in row._mapping.items() if k != "id"}
        connection.rollback()
        with pytest.raises(sa.exc.IntegrityError), connection.begin():
            connection.execute(sa.insert(RolloutRecord.__table__).values(**twin))
        counted = connection.execute(
            sa.select(RolloutRecord.active, sa.func.count()).group_by(RolloutRecord.active)
        ).all()
    assert sorted(counted, key=str) == sorted([(None, 3), (True, 1)], key=str)
