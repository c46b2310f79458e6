"""benchmarks/bench_ui.py at a tiny scale: it builds its project, starts ``mlplan ui``,
measures every page from the app's ``Server-Timing`` header and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlplan.ui._app import PAGES

REPO = Path(__file__).resolve().parents[2]


def test_bench_ui_measures_every_page_of_a_tiny_project_and_writes_its_json(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench_ui.json"
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_ui.py"),
        "--scale", "0.0002", "--hours", "1", "--repeat", "2", "--cache", str(tmp_path / "cache"),
        "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    result = json.loads(out.read_text())
    assert result["goal_ms"] == 300 and result["peer"] is None and result["repeat"] == 2
    project = result["project"]
    assert (project["datasets"], project["models"], project["predictions"]) == (2, 2, 2000)
    assert project["hours"] == 1
    assert project["windows"] > 0  # monitor stored its hourly windows
    measured = {row["page"]: row for row in result["pages"] if not row["absent"]}
    assert {path for path, _ in PAGES} | {"/data/main", "/data/d001"} <= set(measured)
    for row in measured.values():
        assert row["status"] == 200, row
        for times in (row["server_ms"], row["wall_ms"]):
            assert 0 < times["median"] <= times["p95"]
        assert row["server_ms"]["median"] <= row["wall_ms"]["median"]
        assert row["ratio_to_goal"] == row["server_ms"]["median"] / 300
    assert result["all_met"] == all(row["met"] for row in measured.values())
    for path, _ in PAGES:  # the table names every page
        assert f"\n{path} " in done.stdout
    # A second run reuses the project built (its build times are those of the first).
    again = subprocess.run([*command[:-2]], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "bench_ui: built" not in again.stderr
