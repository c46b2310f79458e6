"""The Monitoring items read a deployment's windows over every record, never a slice's."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from tests.monitoring.conftest import DAY, traffic

from mlplan.checklist import status
from mlplan.monitoring import WHOLE, monitor, stored_windows
from mlplan.store import MonitorWindowRecord
from mlplan.workspace import Workspace


def test_the_items_rest_on_the_whole_windows_and_not_on_the_slices(watched: Workspace) -> None:
    traffic(watched)
    monitor(watched, since=DAY + dt.timedelta(hours=10), until=DAY + dt.timedelta(hours=11))
    sliced = {w.family for w in stored_windows(watched) if w.slice == "region=north"}
    assert "output" in sliced

    item = status(watched).get("monitor.software")
    assert item.state == "done"
    assert "production: window of 2026-11-30 10:00: 40 requests" in item.evidence

    with watched.store.transaction() as session:  # the slices' windows alone are left
        session.execute(sa.delete(MonitorWindowRecord).where(MonitorWindowRecord.slice == WHOLE))
    after = status(watched)
    for family in ("software", "output"):
        item = after.get(f"monitor.{family}")
        assert (item.state, item.evidence) == ("missing", "production: no monitoring window stored")
