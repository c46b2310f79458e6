"""The same plan text is validated once per process; every caller gets a plan of its own."""

from __future__ import annotations

import pytest

from mlplan.errors import PlanError
from mlplan.plan import parse_plan, render_plan


def test_the_same_text_gives_equal_plans_each_its_own() -> None:
    text = render_plan("churn", task="binary", target="churned")
    first, second = parse_plan(text), parse_plan(text)
    assert first == second and first is not second
    first.datasets["main"].path = "elsewhere.csv"  # a caller changing its copy
    assert parse_plan(text).datasets["main"].path == "data/main.csv"


def test_changed_text_is_read_anew() -> None:
    text = render_plan("churn", task="binary", target="churned")
    assert parse_plan(text).target == "churned"
    assert parse_plan(text.replace('target: "churned"', 'target: "left"')).target == "left"


def test_a_broken_plan_is_refused_every_time_with_the_file_it_came_from() -> None:
    text = "project: {name: churn}\ntask: binary\ntarget: x\nslcies: []\n"
    for filename in ("a/mlplan.yaml", "b/mlplan.yaml", "a/mlplan.yaml"):
        with pytest.raises(PlanError, match=rf"^{filename}:4: unknown key 'slcies'"):
            parse_plan(text, filename=filename)
