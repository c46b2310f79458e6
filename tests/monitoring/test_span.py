"""One span measured by the monitor for the rollout (``measure_span``): the same families as
``monitor``'s window over the same records, over any bounds, stored nowhere."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.monitoring.conftest import DAY, traffic

from mlplan.errors import ParameterError
from mlplan.modeling import get_model
from mlplan.monitoring import WHOLE, measure_span, monitor, stored_windows
from mlplan.workspace import Workspace

HOUR = DAY + dt.timedelta(hours=10)


def _version(ws: Workspace) -> str:
    return get_model(ws, "logistic-1").package_sha256[:12]


def test_a_span_on_a_windows_bounds_equals_the_monitors_window(watched: Workspace) -> None:
    traffic(watched)
    end = HOUR + dt.timedelta(hours=1)
    window = monitor(
        watched, "production", window="1h", since=HOUR, until=end, store=False, now=end
    )
    span = measure_span(
        watched, "production", model="logistic-1", version=_version(watched), since=HOUR, until=end
    )
    assert {w.family for w in span} == {
        "software",
        "input",
        "output",
        "ml",
        "business",
        "estimated",
    }
    assert sorted((w.to_dict() for w in span), key=str) == sorted(
        (w.to_dict() for w in window.windows), key=str
    )
    assert stored_windows(watched) == []


def test_a_span_counts_only_its_records_and_families(watched: Workspace) -> None:
    traffic(watched)  # a request a minute from 10:00
    span = measure_span(
        watched,
        "production",
        model="logistic-1",
        version=_version(watched),
        since=HOUR + dt.timedelta(minutes=5),
        until=HOUR + dt.timedelta(minutes=25),
        families=["software", "input"],
    )
    software = next(w for w in span if w.family == "software")
    inputs = next(w for w in span if w.family == "input" and w.slice == WHOLE)
    assert {w.family for w in span} == {"software", "input"}
    assert software.samples == 20 and software.metrics["error_rate"] == pytest.approx(2 / 20)
    assert inputs.samples == 18  # the answered ones
    assert (
        measure_span(
            watched,
            "production",
            model="logistic-2",
            version="0" * 12,
            since=HOUR,
            until=HOUR + dt.timedelta(hours=1),
        )
        == []
    )


def test_a_span_must_end_after_it_starts(watched: Workspace) -> None:
    with pytest.raises(ParameterError, match="is not before until"):
        measure_span(watched, "production", model="m", version="v", since=HOUR, until=HOUR)
