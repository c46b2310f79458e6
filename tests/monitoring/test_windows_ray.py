"""``mlplan monitor --engine ray``: each window measured in a Ray task of its own (a real
local cluster, one for the module), the same windows as the local engine's."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from tests.monitoring.conftest import DAY, traffic
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.monitoring import monitor, stored_windows
from mlplan.workspace import Workspace


def test_windows_measured_on_ray_are_the_local_windows(
    watched: Workspace, ray_cluster: Any
) -> None:
    traffic(watched)  # 40 answers from 10:00, a minute apart: four 10-minute windows
    span = {"window": "10m", "since": DAY + dt.timedelta(hours=10), "until": DAY.replace(hour=11)}
    local = monitor(watched, **span, store=False, now=DAY.replace(hour=12))  # type: ignore[arg-type]

    result = CliRunner().invoke(
        app,
        ["monitor", "--window", "10m", "--since", "2026-11-30T10:00:00Z",
         "--until", "2026-11-30T11:00:00Z", "--engine", "ray", "--json",
         "--project", str(watched.root)],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    on_ray = json.loads(result.stdout)
    expected = local.to_dict()
    assert on_ray["windows"] == expected["windows"]
    assert len({w["start"] for w in on_ray["windows"]}) == 4
    assert {w["family"] for w in on_ray["windows"]} >= {"software", "input", "output", "ml"}
    assert on_ray["notes"] == expected["notes"]
    assert len(stored_windows(watched, deployment="production")) == len(expected["windows"])


def test_following_the_log_measures_here(watched: Workspace) -> None:
    result = CliRunner().invoke(
        app, ["monitor", "--follow", "--engine", "ray", "--project", str(watched.root)]
    )
    assert result.exit_code == 2
    assert "--engine ray measures the windows of a span once" in result.output
