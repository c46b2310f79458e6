"""A monitor rule as a rollout guard, on traffic written straight into the prediction log (no
server): the monitor measures the rule's family on the candidate's records of the step's
window and the analysis judges the rule's value against its threshold."""

from __future__ import annotations

import re
import secrets
from typing import Any

import numpy as np
from tests.conftest import edit_plan, ok
from tests.rollout.conftest import canary_at_first_step

from mlplan.modeling import get_model
from mlplan.rollout import RULE_TEST, analyse_rollout, move_rollout, start_rollout
from mlplan.serving import PredictionLog
from mlplan.workspace import Workspace

REGIONS = ("north", "south", "east")

RULES = """monitoring:
  input:
    - {name: age-gaps, metric: features.age.missing, op: '>', threshold: 0.2,
       min_samples: 50}
    - {name: age-gaps-by-region, metric: features.age.missing, op: '>', threshold: 0.5,
       slice: region, min_samples: 20}
  software:
    - {name: errors, metric: error_rate, op: '>', threshold: 0.05, min_samples: 50}
"""


def _plan(ws: Workspace, *guards: str) -> None:
    text, found = re.subn(r"monitoring:\n(?:  .*\n)+", RULES, ws.plan_path.read_text(), count=1)
    assert found == 1
    ws.plan_path.write_text(text)
    edit_plan(ws, "slices: []", "slices: [{name: region, columns: [region]}]")
    edit_plan(ws, "  guards: []", "  guards:\n" + "".join(f"    - {g}\n" for g in guards))


def _traffic(
    log: PredictionLog,
    ws: Workspace,
    model: str,
    n: int,
    rng: np.random.Generator,
    *,
    missing: float = 0.0,
    north_missing: float | None = None,
) -> None:
    """``n`` answered requests of ``model`` for production, a share ``missing`` of them (in
    the north ``north_missing``) without an age."""
    info = get_model(ws, model)
    pending = []
    for i in range(n):
        region = REGIONS[i % 3]
        gaps = north_missing if region == "north" and north_missing is not None else missing
        age: Any = None if rng.random() < gaps else 40 + i % 30
        score = float(rng.uniform(0.0, 1.0))
        pending.append(
            log.record(
                kind="prediction",
                request_id=secrets.token_hex(16),
                model=info.name,
                version=info.package_sha256[:12],
                route="/v1/predict",
                status=200,
                latency_ms=float(rng.gamma(2.0, 5.0)),
                inputs=[{"region": region, "age": age}],
                outputs=[
                    {
                        "label": "1" if score > 0.5 else "0",
                        "probabilities": {"0": 1 - score, "1": score},
                    }
                ],
                deployment="production",
            )
        )
    for done in pending:
        assert done is not None
        done.result(timeout=30)


def _rule(analysis: Any, rule: str) -> Any:
    (found,) = [c for c in analysis.checks if c.rule == rule]
    return found


def test_a_candidate_tripping_an_input_rule_fails_the_step(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator, cli: Any
) -> None:
    _plan(live, "{rule: age-gaps}")
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 300, rng)  # the stable's records do not count
    _traffic(logs, live, "logistic-2", 150, rng, missing=0.5)
    analysis = analyse_rollout(live, "production")
    check = _rule(analysis, "input.age-gaps")
    assert analysis.verdict == "fail" and check.verdict == "fail"
    assert check.metric == "features.age.missing" and check.test == RULE_TEST
    assert check.n_candidate == 150 and check.stable is None and check.p_value is None
    assert 0.35 < check.candidate < 0.65
    assert check.reason.startswith("monitor rule input.age-gaps: features.age.missing = ")
    assert "violates > 0.2 (the value decides)" in check.reason
    assert analysis.reason == check.reason
    assert check.to_dict()["rule"] == "input.age-gaps"
    shown = " ".join(ok(cli("rollout", "status", "production")).stdout.split())
    assert "rule input.age-gaps: features.age.missing" in shown and "monitor rule" in shown


def test_a_candidate_within_the_rules_passes(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live, "{rule: age-gaps}", "{rule: software.errors}")
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 300, rng, missing=0.9)  # the stable's: not judged
    _traffic(logs, live, "logistic-2", 150, rng, missing=0.05)
    analysis = analyse_rollout(live, "production")
    gaps, errors = _rule(analysis, "input.age-gaps"), _rule(analysis, "software.errors")
    assert analysis.verdict == "pass", analysis.reason
    assert gaps.verdict == "pass" and gaps.candidate < 0.2
    assert errors.verdict == "pass" and errors.metric == "error_rate"
    assert errors.candidate == 0.0 and errors.n_candidate == 150


def test_a_sliced_rule_fails_on_the_value_that_trips_it(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live, "{rule: age-gaps-by-region}")
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-2", 150, rng, north_missing=0.9)
    check = _rule(analyse_rollout(live, "production"), "input.age-gaps-by-region")
    assert check.verdict == "fail" and check.slice == "region"
    assert check.group == "region=north" and check.candidate > 0.5
    assert {g.group for g in check.groups} == {"region=north", "region=south", "region=east"}
    assert [g.verdict for g in check.groups if g.group != "region=north"] == ["pass", "pass"]


def test_below_the_rules_min_samples_the_guard_is_inconclusive(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live, "{rule: age-gaps}")
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-2", 30, rng, missing=0.9)
    check = _rule(analyse_rollout(live, "production"), "input.age-gaps")
    assert check.verdict == "inconclusive"
    assert check.reason == (
        "monitor rule input.age-gaps: too few samples to judge features.age.missing: 30 of "
        "min_samples 50"
    )


def test_no_candidate_record_is_inconclusive(live: Workspace) -> None:
    _plan(live, "{rule: age-gaps}")
    canary_at_first_step(live)
    check = _rule(analyse_rollout(live, "production"), "input.age-gaps")
    assert check.verdict == "inconclusive" and check.n_candidate == 0
    assert "0 of min_samples 50" in check.reason


def test_in_a_shadow_a_rule_guard_waits_for_the_candidate_to_answer(live: Workspace) -> None:
    _plan(live, "{rule: age-gaps}")
    start_rollout(live, "logistic-2", strategy="shadow", by="Ana")
    move_rollout(live, "production", "start", actor_kind="controller", by="controller")
    check = _rule(analyse_rollout(live, "production"), "input.age-gaps")
    assert check.verdict == "inconclusive"
    assert check.reason.startswith("monitor rule input.age-gaps: a shadow's candidate answers")
