"""The one way stages record in the store: ``ws.record`` (a run, finished or rolled back with
the body), ``ws.latest_report`` / ``ws.reports`` (the newest report of a kind), ``ws.select``
(rows of this project only), on each store backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplan.errors import DeploymentNotFoundError
from mlplan.plan import render_plan
from mlplan.store import RunRecord
from mlplan.workspace import Workspace, get_deployment


class _Boom(Exception):
    pass


def _runs(ws: Workspace) -> list[RunRecord]:
    with ws.store.transaction() as session:
        runs = list(session.scalars(ws.select(RunRecord).order_by(RunRecord.started_at)))
        session.expunge_all()
        return runs


def test_a_run_is_finished_with_what_it_read_made_and_reported(ws: Workspace) -> None:
    with ws.record("evaluate", {"model": "m-1"}) as run:
        run.input("model", "m-1", sha256="a" * 64)
        run.output("report", "m-1/evaluation.json", sha256="b" * 64)
        run.report("evaluation", {"model": "m-1", "passed": True})
    (stored,) = _runs(ws)
    assert (stored.job, stored.status, stored.parameters) == (
        "evaluate",
        "completed",
        {"model": "m-1"},
    )
    assert stored.ended_at is not None and stored.user
    found = ws.latest_report("evaluation")
    assert found is not None and found.run_id == run.id and found.report["passed"] is True


def test_an_error_in_the_body_leaves_nothing_behind(ws: Workspace) -> None:
    with pytest.raises(_Boom), ws.record("train", {"family": "gbt"}) as run:
        run.report("comparison", {"rows": []})
        raise _Boom
    assert _runs(ws) == []
    assert ws.latest_report("comparison") is None


def test_a_server_run_stays_running_until_it_is_closed(ws: Workspace) -> None:
    with ws.record("serve", {"model": "m-1"}, running=True):
        pass
    (stored,) = _runs(ws)
    assert (stored.status, stored.ended_at) == ("running", None)


def test_the_newest_report_is_the_newest_the_filter_accepts(ws: Workspace) -> None:
    for model, accuracy in (("a-1", 0.7), ("b-1", 0.8), ("a-1", 0.9)):
        with ws.record("evaluate", {"model": model}) as run:
            run.report("evaluation", {"model": model, "accuracy": accuracy})
    assert [r.report["accuracy"] for r in ws.reports("evaluation")] == [0.7, 0.8, 0.9]
    newest_b = ws.latest_report("evaluation", where=lambda r: r["model"] == "b-1")
    assert newest_b is not None and newest_b.report["accuracy"] == 0.8
    assert ws.latest_report("evaluation", where=lambda r: r["model"] == "c-1") is None


def test_two_projects_in_one_store_see_only_their_own_records(
    tmp_path: Path, store_url: str
) -> None:
    spaces = []
    for name in ("churn", "fraud"):
        root = tmp_path / name
        root.mkdir()
        (root / "mlplan.yaml").write_text(render_plan(name, task="binary", target="y"))
        spaces.append(Workspace(root, store_url=store_url))
    churn, fraud = spaces
    try:
        with churn.record("data add", {"dataset": "customers"}) as run:
            run.report("note", {"project": "churn"})
        assert [r.job for r in _runs(churn)] == ["data add"]
        assert _runs(fraud) == []
        assert fraud.latest_report("note") is None
        with pytest.raises(DeploymentNotFoundError, match=r"no deployment 'production'"):
            get_deployment(fraud)
    finally:
        for ws in spaces:
            ws.close()
