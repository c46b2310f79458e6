"""One number, one interval: ``models compare`` and ``evaluate`` measure with the same engine
and the same bootstrap draws, and every label metric says the threshold it used."""

from __future__ import annotations

import json

from tests.conftest import chdir
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.workspace import Workspace


def test_few_resamples_on_the_valid_rows_draw_the_report(trained: Workspace) -> None:
    # With 5 resamples a percentile interval can miss its own point value; the slice plot
    # must still draw it (it used to end in "'xerr' must not contain negative values").
    runner = CliRunner()
    with chdir(trained.root):
        shown = runner.invoke(
            app, ["evaluate", "logistic-1", "--bootstrap", "5", "--split", "valid", "--json"]
        )
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["bootstrap"] == 5 and report["part"] == "valid"
