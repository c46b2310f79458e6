"""``mlplan monitor``: the windows as a table and as JSON, and bad input named by its flag."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import ok
from tests.monitoring.conftest import traffic

from mlplan.workspace import Workspace


def test_monitor_prints_the_windows_and_their_slices(cli: Any, watched: Workspace) -> None:
    traffic(watched)
    span = ("--since", "2026-11-30T10:00", "--until", "2026-11-30T11:00", "--window", "30m")
    shown = ok(cli("monitor", *span)).stdout
    assert (
        "deployment production: windows of 30m from 2026-11-30 10:00 to 2026-11-30 11:00" in shown
    )
    assert "2026-11-30 10:00" in shown and "2026-11-30 10:30" in shown
    assert "region=north" in shown and "estimated [interval]" in shown
    assert "drifted against the training reference" in shown
    assert "not tested (too few rows)" in shown  # 27 and 9 answers: under 30, no test
    answer = json.loads(ok(cli("monitor", "production", *span, "--json")).stdout)
    software = [w for w in answer["windows"] if w["family"] == "software"]
    assert [w["samples"] for w in software] == [30, 10]
    assert software[0]["metrics"]["server_error_rate"] == 3 / 30
    assert software[0]["metrics"]["statuses"] == {"200": 27, "500": 3}
    whole = [w for w in answer["windows"] if w["slice"] == "all"]
    (estimated, _) = [w for w in whole if w["family"] == "estimated"]
    primary = estimated["metrics"]["primary"]
    assert estimated["samples"] == 27
    assert set(estimated["metrics"]["metrics"][primary]["estimated"]) == {"value", "low", "high"}
    (inputs, _) = [w for w in whole if w["family"] == "input"]
    age = inputs["metrics"]["drift"]["features"]["age"]
    assert (age["rows"], age["drifted"]) == (27, None) and age["reason"]
    assert inputs["metrics"]["drift"]["absent"] == ["charges", "gender"]


def test_monitor_names_the_flag_at_fault(cli: Any, watched: Workspace) -> None:
    bad = cli("monitor", "--window", "5x")
    assert bad.exit_code == 2
    assert "--window takes a duration such as 90s, 30m, 1h or 2d; got '5x'" in bad.stderr
    late = cli("monitor", "--since", "2026-12-02", "--until", "2026-12-01")
    assert late.exit_code == 2
    assert "--since 2026-12-02T00:00:00+00:00 is not before until" in late.stderr
    garbled = cli("monitor", "--until", "yesterday")
    assert garbled.exit_code == 2 and "--until takes a time (ISO 8601" in garbled.stderr
    unknown = cli("monitor", "staging")
    assert unknown.exit_code == 1 and "no deployment or model 'staging'" in unknown.stderr
    empty = ok(cli("monitor", "--since", "2026-11-30T00:00", "--until", "2026-11-30T02:00"))
    assert "note: no predictions in .mlplan/predictions for deployment production" in empty.stdout


def test_monitor_is_a_command_with_subcommands(cli: Any, watched: Workspace) -> None:
    shown = ok(cli("monitor", "--help")).stdout
    assert "--follow" in shown and "check" in shown and "export" in shown
    assert "mlplan monitor check [OPTIONS] [deployment]" in ok(cli("monitor", "check", "-h")).stdout
    bad = cli("monitor", "production", "--window", "5x")  # options after the name
    assert bad.exit_code == 2 and "--window takes a duration" in bad.stderr
    extra = cli("monitor", "production", "more")
    assert extra.exit_code == 2 and "No such command 'more'" in extra.stderr


def test_monitor_family_measures_only_the_families_named(cli: Any, watched: Workspace) -> None:
    traffic(watched)
    span = ("--since", "2026-11-30T10:00", "--until", "2026-11-30T11:00")
    answer = json.loads(
        ok(cli("monitor", *span, "--family", "software", "--family", "ml", "--json")).stdout
    )
    assert {w["family"] for w in answer["windows"]} == {"software", "ml"}
    shown = ok(cli("monitor", *span, "--family", "output")).stdout
    assert "region=north" in shown  # the slices' table, from the output family alone
    bad = cli("monitor", *span, "--family", "labels")
    assert bad.exit_code == 2
    assert "--family labels is not a family; the families are software, input" in bad.stderr
    both = cli("monitor", "--follow", "--family", "ml")
    assert both.exit_code == 2 and "--family cannot be used with --follow" in both.stderr
