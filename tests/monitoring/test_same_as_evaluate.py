"""The ML family measures with evaluate's engine: the test split's rows sent to the real app
serving production, their true labels sent back through the feedback route, and the
monitor's metrics equal evaluate's on those rows, overall and within each region."""

from __future__ import annotations

import pytest
from tests.serving.conftest import bearer, started

from mlplan.data import get_split, load_split
from mlplan.evaluation import evaluate
from mlplan.monitoring import WHOLE, monitor
from mlplan.serving import ServeConfig, create_app, create_key
from mlplan.workspace import Workspace, get_deployment


def test_ml_metrics_from_the_log_equal_evaluates_on_the_same_rows(watched: Workspace) -> None:
    deployed = get_deployment(watched).model_ref
    _, table, codes = load_split(watched, get_split(watched))
    rows = table.filter(codes == 2).to_pylist()
    tokens = {
        role: create_key(watched, role, roles=[role]).token for role in ("predict", "feedback")
    }
    config = ServeConfig(
        root=str(watched.root), model=deployed, deployment="production", key_refresh_seconds=0
    )
    with started(create_app(config)) as client:
        for row in rows:
            record = {k: row[k] for k in ("age", "charges", "gender", "region")}
            answer = client.post(
                "/v1/predict", json={"records": [record]}, headers=bearer(tokens["predict"])
            )
            assert answer.status_code == 200, answer.text
            sent = client.post(
                "/v1/feedback",
                json={"request_id": answer.json()["request_id"], "label": str(row["churned"])},
                headers=bearer(tokens["feedback"]),
            )
            assert sent.status_code == 202, sent.text

    # One window holding every request (a day's could be cut at midnight).
    result = monitor(watched, window="3650d", since="1h")
    evaluation = evaluate(watched, deployed, n_boot=0)
    ml = {w.slice: w for w in result.windows if w.family == "ml"}
    assert ml[WHOLE].samples == len(rows)
    names = ["precision", "recall", "roc_auc"]
    assert ml[WHOLE].metrics["metrics"] == pytest.approx(
        {n: evaluation.overall.overall[n].value for n in names}, abs=1e-12
    )
    region = evaluation.slices["region"].by_group
    for value in ("region=north", "region=south", "region=east"):
        assert ml[value].samples == region[value]["count"].value
        assert ml[value].metrics["metrics"] == pytest.approx(
            {n: region[value][n].value for n in names}, nan_ok=True, abs=1e-12
        )
