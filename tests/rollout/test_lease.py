"""The controller lease on SQLite and PostgreSQL: migration 0009 up and down, exactly one
holder when controllers race, renewal, expiry and release."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import evaluated, migrated, register_split_train

from mlplan.errors import DeploymentNotFoundError
from mlplan.rollout import Lease, acquire_lease, release_lease, start_rollout
from mlplan.store import open_store, utcnow
from mlplan.workspace import Workspace


def test_migration_0009_adds_the_lease_table_and_removes_it(store_url: str, tmp_path: Path) -> None:
    with migrated(store_url, "0008") as connection:
        assert not sa.inspect(connection).has_table("rollout_leases")
    store = open_store(tmp_path, url=store_url)  # to head on open
    with store.engine.connect() as connection:
        inspector = sa.inspect(connection)
        assert inspector.has_table("rollout_leases")
        unique = inspector.get_unique_constraints("rollout_leases")
        assert [c["column_names"] for c in unique] == [["deployment_id"]]
    store.close()
    with migrated(store_url, "0008", down=True) as connection:
        assert not sa.inspect(connection).has_table("rollout_leases")


@pytest.fixture
def deployed(ws: Workspace) -> Workspace:
    """A project on each backend whose production deployment serves logistic-1."""
    register_split_train(ws)
    start_rollout(ws, evaluated(ws), by="Priya")
    return ws


def _race(spaces: list[Workspace], prefix: str, at: dt.datetime) -> dict[str, Lease]:
    """Each workspace tries to take production's lease at once, as ``PREFIX-cI``."""
    barrier = threading.Barrier(len(spaces))
    got: dict[str, Lease] = {}

    def race(i: int) -> None:
        barrier.wait()
        got[f"{prefix}-c{i}"] = acquire_lease(spaces[i], "production", f"{prefix}-c{i}", now=at)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(spaces))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return got


def test_racing_controllers_leave_exactly_one_holder(deployed: Workspace) -> None:
    # Each racer its own workspace, so its own connections, as separate processes would.
    spaces = [Workspace(deployed.root, store_url=deployed.store.url) for _ in range(8)]
    now = utcnow()
    for round_ in range(3):  # a free lease, then an expired one, twice
        got = _race(spaces, f"r{round_}", now + dt.timedelta(seconds=20 * round_))
        assert len(got) == len(spaces)
        holders = {lease.holder for lease in got.values()}
        assert len(holders) == 1, holders
        (winner,) = holders
        assert [name for name, lease in got.items() if lease.held] == [winner]
    for space in spaces:
        space.close()


def test_a_lease_is_renewed_by_its_holder_and_taken_once_expired(deployed: Workspace) -> None:
    t0 = utcnow()
    first = acquire_lease(deployed, "production", "a", now=t0, seconds=10)
    assert (
        first.held and first.acquired_at == t0 and first.expires_at == t0 + dt.timedelta(seconds=10)
    )
    renewed = acquire_lease(deployed, "production", "a", now=t0 + dt.timedelta(seconds=5))
    assert renewed.held and renewed.acquired_at == t0  # renewed, not taken afresh
    assert renewed.renewed_at == t0 + dt.timedelta(seconds=5)
    other = acquire_lease(deployed, "production", "b", now=t0 + dt.timedelta(seconds=14))
    assert (other.held, other.holder) == (False, "a")
    later = t0 + dt.timedelta(seconds=15)
    taken = acquire_lease(deployed, "production", "b", now=later)
    assert taken.held and taken.acquired_at == later
    lost = acquire_lease(deployed, "production", "a", now=later)
    assert (lost.held, lost.holder) == (False, "b")
    # Given back, the next controller takes it at once; the one that gave it back no more.
    assert release_lease(deployed, "production", "b", now=later)
    assert not release_lease(deployed, "production", "b", now=later)
    assert acquire_lease(deployed, "production", "a", now=later).held


def test_a_holder_whose_lease_expired_takes_it_afresh(deployed: Workspace) -> None:
    t0 = utcnow()
    acquire_lease(deployed, "production", "a", now=t0, seconds=10)
    again = acquire_lease(deployed, "production", "a", now=t0 + dt.timedelta(seconds=30))
    assert again.held and again.acquired_at == t0 + dt.timedelta(seconds=30)


def test_a_lease_of_an_unknown_deployment_is_refused(deployed: Workspace) -> None:
    with pytest.raises(
        DeploymentNotFoundError, match="no deployment 'staging'; deployments: production"
    ):
        acquire_lease(deployed, "staging", "a")
