"""The Rollout items of ``mlplan status``: each from the rollouts of its strategy and what
their analyses found."""

from __future__ import annotations

from mlplan.checklist import status
from mlplan.rollout import move_rollout, start_rollout
from mlplan.workspace import Workspace, approve

_PASS = {"analysis": "pass", "report": {"requests": {"candidate": 1200, "stable": 1200}}}
_FAIL = {
    "analysis": "fail",
    "report": {
        "requests": {"candidate": 300, "stable": 2700},
        "checks": [{"verdict": "fail", "reason": "error_rate 5.1% > 2% (p = 0.001)"}],
    },
}


def _edit(ws: Workspace, old: str, new: str) -> Workspace:
    text = ws.plan_path.read_text()
    assert old in text
    ws.plan_path.write_text(text.replace(old, new, 1))
    return Workspace(ws.root)


def _controller(ws: Workspace, action: str, figures: dict[str, object] | None = None) -> None:
    move_rollout(
        ws, "production", action, by="controller", actor_kind="controller", figures=figures
    )  # type: ignore[arg-type]


def test_a_canary_is_done_once_it_ran_its_steps_under_guards(live: Workspace) -> None:
    live = _edit(live, "strategy: null", "strategy: canary")
    item = status(live).get("rollout.canary")
    assert (item.state, item.evidence) == ("missing", "no canary yet")
    start_rollout(live, "logistic-2", by="Ana")
    item = status(live).get("rollout.canary")
    assert item.state == "missing" and "no guards" in item.evidence
    live = _edit(live, "guards: []", "guards: [{metric: error_rate, op: '<=', threshold: 0.02}]")
    _controller(live, "start")
    _controller(live, "advance")
    _controller(live, "rollback", _FAIL)
    item = status(live).get("rollout.canary")
    assert item.state == "done"
    assert "guards: error_rate" in item.evidence and "rolled_back" in item.evidence
    assert "error_rate 5.1% > 2%" in item.evidence
    # Shadow and blue-green do not apply to a canary plan with none run.
    assert status(live).get("rollout.shadow").state == "not_applicable"


def test_a_shadow_is_done_once_compared_and_failing_when_it_disagrees(live: Workspace) -> None:
    live = _edit(live, "strategy: null", "strategy: shadow")
    start_rollout(live, "logistic-2", by="Ana")
    _controller(live, "start")
    assert status(live).get("rollout.shadow").state == "missing"
    _controller(live, "pause", _PASS)
    item = status(live).get("rollout.shadow")
    assert item.state == "done" and "1,200 candidate" in item.evidence
    move_rollout(live, "production", "abort", by="Ana")
    start_rollout(live, "logistic-2", by="Ana")
    _controller(live, "start")
    _controller(live, "pause", _FAIL)
    item = status(live).get("rollout.shadow")
    assert item.state == "failing" and "error_rate 5.1% > 2%" in item.evidence
    assert item.next_step is not None and "mlplan rollout abort production" in item.next_step


def test_a_blue_green_is_done_once_switched_and_ended(live: Workspace) -> None:
    start_rollout(live, "logistic-2", strategy="blue-green", by="Ana")
    item = status(live).get("rollout.blue_green")
    assert item.state == "missing" and "not switched" in item.evidence
    _controller(live, "start")
    _controller(live, "advance")
    _controller(live, "rollback", _FAIL)
    item = status(live).get("rollout.blue_green")
    assert item.state == "done" and "a rollback tried" in item.evidence


def test_a_sign_off_is_needed_only_where_the_plan_asks(live: Workspace) -> None:
    assert status(live).get("rollout.signoff").state == "not_applicable"
    live = _edit(live, "approval_above: null", "approval_above: 50")
    assert status(live).get("rollout.signoff").state == "missing"
    info = start_rollout(live, "logistic-2", strategy="blue-green", by="Ana")[1]
    approve(live, "promote", role="product_owner", by="Dana", subject=info.candidate)
    _controller(live, "start")
    _controller(live, "advance")
    item = status(live).get("rollout.signoff")
    assert item.state == "done" and info.candidate in item.evidence
