"""The Python API as a notebook meets it: examples/python_api.py drives the churn project end
to end through ``import mlplan``, and leaves the same evidence the commands do."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "python_api.py"


@pytest.mark.slow
def test_the_python_example_drives_the_churn_project_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("python_api_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    report = example.main(tmp_path / "churn")

    out = capsys.readouterr().out
    assert "registered: customers@1 customers@2" in out
    assert "deployed: logistic-1@2 to production" in out  # the version its evaluation made
    assert "scored: 13,200 rows" in out
    states = {s.item.id: s.state for s in report.items}
    for done in (
        "data.datasets",
        "data.splits",
        "labels.hlp",
        "model.quick_and_dirty",
        "model.families",
        "model.compared",
        "model.packaged",
        "eval.slices",
        "eval.model_card",
        "scope.buy_in",
    ):
        assert states[done] == "done", done
    # What the plan's own thresholds fail on, found the same way the CLI finds it.
    assert states["labels.agreement"] == "failing"
    assert (tmp_path / "churn" / "reports" / "logistic-1" / "model-card.md").is_file()
