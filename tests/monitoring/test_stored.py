"""Reading stored windows and alerts a span at a time: the store filters by start (windows)
or window end (alerts) and keeps only the newest, so a dashboard's page costs the same
however many are stored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from tests.monitoring.conftest import DAY, traffic
from tests.monitoring.test_alerts import RULES, set_rules

from mlplan.errors import ParameterError
from mlplan.monitoring import MonitorWindow, check_alerts, list_alerts, monitor, stored_windows
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
