"""The load test's report and its arguments (the load test itself runs, slow, in
test_checklist_deployment.py)."""

from __future__ import annotations

import pytest

from mlplan.errors import ParameterError
from mlplan.serving import LoadTestReport, ObjectiveCheck, load_test
from mlplan.workspace import Workspace


def test_a_load_test_report_gives_the_json_the_cli_printed() -> None:
    report = LoadTestReport(
        model="m-1",
        version="abc",
        concurrency=2,
        seconds=1.5,
        rows_per_request=1,
        requests=10,
        statuses={"200": 9, "503": 1},
        qps=6.0,
        latency_p50_ms=1.0,
        latency_p99_ms=3.0,
        memory_mb=100.0,
        cpu_seconds=0.5,
        client="httpx",
        checks=(ObjectiveCheck("qps", 5.0, 6.0, True),),
        passed=True,
        errors=1,
        run_id="r1",
    )
    assert report.to_dict() == {
        "model": "m-1",
        "version": "abc",
        "concurrency": 2,
        "seconds": 1.5,
        "rows_per_request": 1,
        "requests": 10,
        "statuses": {"200": 9, "503": 1},
        "qps": 6.0,
        "latency_p50_ms": 1.0,
        "latency_p99_ms": 3.0,
        "memory_mb": 100.0,
        "cpu_seconds": 0.5,
        "client": "httpx",
        "checks": [{"objective": "qps", "goal": 5.0, "measured": 6.0, "met": True}],
        "passed": True,
        "errors": 1,
        "run_id": "r1",
    }
    assert list(report.to_dict())[-4:] == ["checks", "passed", "errors", "run_id"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"concurrency": 0}, "'concurrency', 'seconds' and 'rows_per_request' must be positive"),
        ({"seconds": -1.0}, "'concurrency', 'seconds' and 'rows_per_request' must be positive"),
        (
            {"rows_per_request": 0},
            "'concurrency', 'seconds' and 'rows_per_request' must be positive",
        ),
    ],
    ids=["concurrency", "seconds", "rows"],
)
def test_a_load_test_names_a_bad_argument(
    served: Workspace, given: dict[str, float], message: str
) -> None:
    with pytest.raises(ParameterError, match=f"^{message}$"):
        load_test(served, "logistic-1", **given)  # type: ignore[arg-type]
