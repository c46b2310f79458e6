from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import customers_table, write_csv

from mlplan.plan import render_plan


def _project(root: Path) -> None:
    plan = render_plan("race", task="binary", target="churned").replace(
        "    pii_columns: null", "    pii_columns: [name, email]"
    )
    (root / "mlplan.yaml").write_text(plan)


def _run_all(
    root: Path, commands: list[list[str]], url: str | None
) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "MLPLAN_USER": "racer"}
    env.pop("MLPLAN_STORE_URL", None)
    if url:
        env["MLPLAN_STORE_URL"] = url
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mlplan", *c, "--json"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    results = []
    for proc, command in zip(procs, commands, strict=True):
        out, err = proc.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(command, proc.returncode, out, err))
    return results


@pytest.mark.slow
def test_commands_racing_on_a_fresh_store_all_succeed(tmp_path: Path, store_url: str) -> None:
    _project(tmp_path)
    for i in range(4):
        write_csv(customers_table(60, seed=i), tmp_path / f"v{i}.csv")
    url = None if store_url.startswith("sqlite") else store_url
    commands = [["data", "add", f"other{i}", f"v{i}.csv"] for i in range(2)]
    commands += [["data", "add", "customers", f"v{i}.csv"] for i in range(4)]
    commands += [["data", "add", "customers", "v0.csv"]]  # same bytes as another racer
    results = _run_all(tmp_path, commands, url)
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    refs = sorted(json.loads(r.stdout)["ref"] for r in results if r.args[2] == "customers")
    # Four distinct contents: versions 1..4, and the repeated bytes map to one of them.
    assert sorted(set(refs)) == [f"customers@{v}" for v in range(1, 5)]
    assert len(refs) == 5
    artifacts = [p for p in (tmp_path / ".mlplan" / "artifacts").rglob("*") if p.is_file()]
    assert not [p for p in artifacts if p.name.startswith(".incoming")]
    if url:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM projects")).scalar() == 1
        engine.dispose()
