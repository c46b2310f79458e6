"""``mlplan run --engine ray``: the same pipeline with its data profiled, its models fitted
and its evaluation scored on a real local Ray cluster gives what the local engine gives, so
a local rerun reuses every step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.pipeline.conftest import quick_plan

from mlplan.evaluation import latest_evaluation
from mlplan.pipeline import run_pipeline
from mlplan.store import RunRecord
from mlplan.workspace import Workspace

STEPS = ["data", "split", "train", "labels", "compare", "evaluate"]


def _records(ws: Workspace, job: str) -> list[RunRecord]:
    with ws.store.transaction() as session:
        runs = list(session.scalars(ws.select(RunRecord).where(RunRecord.job == job)))
        session.expunge_all()
    return runs


def test_a_pipeline_on_ray_gives_the_local_results_and_a_local_rerun_reuses_it(
    tmp_path: Path, ray_cluster: Any
) -> None:
    on_ray = Workspace(quick_plan(tmp_path / "ray"))
    locally = Workspace(quick_plan(tmp_path / "local"))
    result = run_pipeline(on_ray, ["evaluate"], engine="ray")
    assert result.ok, result.to_dict()
    assert [(s.step, s.state) for s in result.steps] == [(s, "ran") for s in STEPS]
    (pipeline,) = _records(on_ray, "pipeline")
    assert pipeline.parameters["engine"] == "ray"
    # Every stage really ran on Ray: the data's profile and the evaluation say so.
    (added,) = _records(on_ray, "data add")
    assert added.parameters["engine"] == "ray"
    (evaluated,) = _records(on_ray, "evaluate")
    assert evaluated.parameters["engine"] == "ray"

    local = run_pipeline(locally, ["evaluate"])
    assert local.ok
    ray_out = {s.step: s.outputs for s in result.steps}
    local_out = {s.step: s.outputs for s in local.steps}
    for step in ("data", "split", "labels"):  # the same versions and splits, by content
        assert ray_out[step] == local_out[step], step
    # The same models (a package holds the run that made it: its bytes differ).
    assert [m["ref"] for m in ray_out["train"]["models"]] == ["logistic-1@1"]  # type: ignore[index]
    assert [m["ref"] for m in local_out["train"]["models"]] == ["logistic-1@1"]  # type: ignore[index]
    assert ray_out["compare"]["best"] == local_out["compare"]["best"]  # type: ignore[index]
    model = result.steps[-1].outputs["model"]  # type: ignore[index]
    ray_report, local_report = (latest_evaluation(w, model) for w in (on_ray, locally))
    assert ray_report is not None and local_report is not None
    assert ray_report.report["metrics"] == local_report.report["metrics"]
    assert ray_report.report["slices"] == local_report.report["slices"]

    # The engine changes how, not what: the local rerun reuses every step.
    rerun = run_pipeline(on_ray, ["evaluate"])
    assert [s.state for s in rerun.steps] == ["cached"] * len(STEPS)
    # The model trained on Ray sits under the pipeline's train step, as locally.
    assert {r.parent_id for r in _records(on_ray, "train")} == {result.steps[2].run_id}
    on_ray.close()
    locally.close()
