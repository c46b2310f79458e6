"""A client of the churn model's server, as the retention app would call it: one prediction,
one request with mistakes (the server names each), ground truth fed back, and the metrics.

    python client.py BASE_URL APP_KEY_FILE ADMIN_KEY_FILE

The key files are what ``mlplan keys create --json`` wrote; tokens are never printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx


def main() -> None:
    base = sys.argv[1]
    token, admin = (json.loads(Path(path).read_text())["token"] for path in sys.argv[2:4])
    customer = {
        "age": 42, "tenure_months": 3, "monthly_charges": 89.5, "support_calls": 4,
        "data_gb": 12.0, "gender": "female", "ethnicity": "group_b", "region": "north",
        "contract": "monthly",
    }  # fmt: skip
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        answer = client.post("/v1/predict", json={"records": [customer]})
        print("POST /v1/predict ->", answer.status_code, json.dumps(answer.json()))
        wrong = customer | {"age": "forty-two", "contract": "weekly", "email": "a@b.org"}
        refused = client.post("/v1/predict", json={"records": [wrong]})
        print("POST /v1/predict (bad) ->", refused.status_code)
        for problem in refused.json()["detail"]:
            print("   ", ".".join(map(str, problem["loc"][2:])), "-", problem["msg"])
        anonymous = httpx.post(f"{base}/v1/predict", json={"records": [customer]})
        print("POST /v1/predict without a key ->", anonymous.status_code)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as client:
        feedback = client.post(
            "/v1/feedback",
            json={
                "request_id": answer.json()["request_id"],
                "label": "1",
                "events": [{"name": "called_by_retention_team"}],
            },
        )
        print("POST /v1/feedback ->", feedback.status_code, feedback.json())
        metrics = client.get("/metrics").text.splitlines()
        shown = [m for m in metrics if m.startswith(("mlplan_http_requests_total", "mlplan_input"))]
        print("GET /metrics (excerpt):")
        for line in shown[:8]:
            print("   ", line)


if __name__ == "__main__":
    main()
