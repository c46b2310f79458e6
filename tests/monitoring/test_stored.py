"""Reading stored windows and alerts a span at a time: the store filters by start (windows)
or window end (alerts) and keeps only the newest, so a dashboard's page costs the same
however many are stored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.conftest import migrated
from tests.monitoring.conftest import DAY, traffic
from tests.monitoring.test_alerts import RULES, set_rules

from mlplan.errors import ParameterError
from mlplan.monitoring import MonitorWindow, check_alerts, list_alerts, monitor, stored_windows
from mlplan.store import open_store
from mlplan.workspace import Workspace

HOURS = (10, 12, 14)


def _starts(windows: list[MonitorWindow]) -> list[int]:
    return sorted({int((w.start - DAY).total_seconds() // 3600) for w in windows})


def test_stored_windows_filter_by_start_and_keep_the_newest_windows_whole(
    watched: Workspace,
) -> None:
    for hour in HOURS:
        traffic(watched, DAY + dt.timedelta(hours=hour))
    end = DAY + dt.timedelta(days=1)
    monitor(watched, "production", since=DAY, until=end, now=end)
    every = stored_windows(watched, deployment="production")
    assert _starts(every) == list(HOURS)

    newest = stored_windows(watched, deployment="production", limit=2)
    assert _starts(newest) == [12, 14]
    assert newest == [w for w in every if w.start >= DAY + dt.timedelta(hours=12)]
    assert [w.start for w in newest] == sorted(w.start for w in newest)  # oldest first
    assert {w.slice for w in newest} == {w.slice for w in every}  # each window whole

    before = stored_windows(watched, until=DAY + dt.timedelta(hours=14), limit=1)
    assert _starts(before) == [12]
    assert _starts(stored_windows(watched, since=DAY + dt.timedelta(hours=12))) == [12, 14]
    software = stored_windows(watched, family="software", limit=1)
    assert {w.family for w in software} == {"software"} and _starts(software) == [14]
    assert stored_windows(watched, deployment="staging", limit=5) == []
    north = stored_windows(watched, slice="region=north", limit=1)
    assert {w.slice for w in north} == {"region=north"} and _starts(north) == [14]
    assert north == [w for w in newest if w.slice == "region=north" and w.start == north[0].start]


def test_list_alerts_filters_by_window_end_and_limits_to_the_newest(watched: Workspace) -> None:
    set_rules(watched)
    traffic(watched)
    first = check_alerts(watched, now=DAY + dt.timedelta(hours=11, minutes=5))
    set_rules(watched, RULES.replace("threshold: 0.05", "threshold: 0.5"))
    check_alerts(watched, now=DAY + dt.timedelta(hours=11, minutes=25))  # resolves it
    set_rules(watched)
    traffic(watched, DAY + dt.timedelta(hours=14))
    second = check_alerts(watched, now=DAY + dt.timedelta(hours=15, minutes=5))
    (old,), (new,) = first.opened, second.opened
    assert new.window_end == DAY + dt.timedelta(hours=15)

    noon = DAY + dt.timedelta(hours=12)
    assert [a.id for a in list_alerts(watched)] == [new.id, old.id]
    assert [a.id for a in list_alerts(watched, since=noon)] == [new.id]
    assert [a.id for a in list_alerts(watched, until=noon)] == [old.id]
    assert [a.id for a in list_alerts(watched, until=new.window_end)] == [new.id, old.id]
    assert [a.id for a in list_alerts(watched, limit=1)] == [new.id]
    assert [a.id for a in list_alerts(watched, state="resolved", limit=1)] == [old.id]


@pytest.mark.parametrize("call", [stored_windows, list_alerts], ids=["windows", "alerts"])
def test_a_limit_below_one_is_refused(watched: Workspace, call: Callable[..., Any]) -> None:
    with pytest.raises(ParameterError, match="'limit' must be at least 1; got 0"):
        call(watched, limit=0)


def test_migration_0012_indexes_a_familys_windows_by_start_and_removes_it(
    store_url: str, tmp_path: Path
) -> None:
    def indexes(connection: Any) -> set[str]:
        return {i["name"] for i in sa.inspect(connection).get_indexes("monitor_windows")}

    with migrated(store_url, "0011") as connection:
        assert "ix_monitor_windows_span" not in indexes(connection)
    open_store(tmp_path, url=store_url).close()
    with migrated(store_url, "0012") as connection:
        assert "ix_monitor_windows_span" in indexes(connection)
    with migrated(store_url, "0011", down=True) as connection:
        assert "ix_monitor_windows_span" not in indexes(connection)
        assert "ix_monitor_windows_window_start" in indexes(connection)
