"""The software family's CPU, memory, queue depth and batch sizes come from the health
records each server process writes into its own log (``mlplan serve --health-every``)."""

from __future__ import annotations

import time

from tests.serving.conftest import bearer, started

from mlplan.monitoring import monitor
from mlplan.serving import ServeConfig, create_app, create_key, log_folder, query_log
from mlplan.workspace import Workspace, get_deployment

RECORD = {"gender": "female", "age": 40, "region": "north", "charges": 61.5}
BATCHES = (
    "SELECT coalesce(sum(CAST(json_extract_string(outputs, '$.batches') AS INTEGER)), 0) AS n "
    "FROM predictions WHERE kind = 'health'"
)


def test_the_servers_health_records_reach_the_software_family(watched: Workspace) -> None:
    token = create_key(watched, "app", roles=["predict"]).token
    config = ServeConfig(
        root=str(watched.root),
        model=get_deployment(watched).model_ref,
        deployment="production",
        key_refresh_seconds=0,
        health_seconds=0.05,
    )
    with started(create_app(config)) as client:
        for _ in range(12):
            answer = client.post("/v1/predict", json={"records": [RECORD]}, headers=bearer(token))
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30
        while query_log(log_folder(watched), BATCHES)["n"][0].as_py() < 12:
            assert time.monotonic() < deadline, "no health record counted the 12 batches"
            time.sleep(0.05)

    result = monitor(watched, window="3650d", since="1h")
    (software,) = [w for w in result.windows if w.family == "software"]
    assert software.samples == 12
    metrics = software.metrics
    assert metrics["processes"] == 1
    assert metrics["batches"] == 12 and metrics["batch_rows_mean"] == 1.0
    assert metrics["rss_bytes"] > 50 * 2**20  # a Python process with a model loaded
    assert metrics["cpu_percent"] >= 0
    # one request at a time: a health record taken while one waits sees it, never more
    assert metrics["queued_rows_max"] in (0, 1)
    assert not any("no health records" in note for note in result.notes)
