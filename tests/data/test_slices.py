"""Slices from the plan: a filter expression can only filter rows, never reach files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import ok


def test_slice_filters_cannot_reach_files(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))
    plan = project_dir / "mlplan.yaml"
    probe = project_dir / "secret.csv"
    probe.write_text("x\n1\n")
    expression = f"age > (SELECT count(*) FROM read_csv('{probe}'))"
    plan.write_text(
        plan.read_text().replace(
            "slices: []", f'slices:\n  - {{name: sneaky, where: "{expression}"}}'
        )
    )
    result = cli("plan", "validate")
    assert result.exit_code == 2
    assert "slice 'sneaky'" in result.stderr and "Permission Error" in result.stderr
