"""Feedback's human decision (assist mode): a class the model could have predicted, logged
beside the label; anything else refused naming the field."""

from __future__ import annotations

import json

from tests.serving.conftest import RECORD, bearer, started

from mlplan.serving import ServeConfig, create_app, query_log
from mlplan.workspace import Workspace


def test_feedback_takes_a_human_decision_and_refuses_one_the_model_cannot_make(
    served: Workspace, tokens: dict[str, str]
) -> None:
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as client:
        answer = client.post(
            "/v1/predict", json={"records": [RECORD]}, headers=bearer(tokens["predict"])
        )
        request_id = answer.json()["request_id"]
        sent = client.post(
            "/v1/feedback",
            json={"request_id": request_id, "decision": "1"},
            headers=bearer(tokens["feedback"]),
        )
        assert sent.status_code == 202
        bad = client.post(
            "/v1/feedback",
            json={"request_id": request_id, "decision": "maybe", "label": 0},
            headers=bearer(tokens["feedback"]),
        )
    assert bad.status_code == 422
    (problem,) = bad.json()["detail"]
    assert problem["loc"] == ["body", "decision"]
    assert problem["msg"] == "expected one of the model's classes: 0, 1"
    assert "maybe" not in bad.text
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    rows = query_log(folder, "SELECT outputs FROM predictions WHERE kind = 'feedback'")
    assert [json.loads(o) for o in rows.column("outputs").to_pylist()] == [{"decision": "1"}]
