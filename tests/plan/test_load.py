from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplan.errors import MlplanError, PlanError
from mlplan.plan import Plan, load_plan, parse_plan, render_plan

REPO = Path(__file__).resolve().parents[2]
MINIMAL = "project: {name: churn}\ntask: binary\ntarget: churned\n"


def test_minimal_plan_loads_with_defaults() -> None:
    plan = parse_plan(MINIMAL)
    assert plan.project.name == "churn"
    assert plan.scenario is None  # not stated; the rollout defaults as for a new product
    assert plan.rollout_strategy == "canary"
    assert plan.deployment.logging.mode == "acked"
    assert plan.risks is None  # "not stated", distinct from []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL + "slcies: []\n",
            r"^mlplan.yaml:4: unknown key 'slcies' — did you mean 'slices'\?$",
        ),
        (
            MINIMAL + "deployment:\n  mode: realtime\n  latncy: 3\n",
            r"^mlplan.yaml:6: unknown key 'latncy' — valid keys: .*compute.*",
        ),
        (
            MINIMAL + "deployment:\n  objectives: {qsp: 3}\n",
            r"mlplan.yaml:5: unknown key 'qsp' — did you mean 'qps'\?",
        ),
        (
            "project: {name: churn}\ntask: binar\ntarget: y\n",
            r"mlplan.yaml:2: task: Input should be 'regression', 'binary'.*got 'binar'",
        ),
        ("project: {name: churn}\ntask: binary\n", r"task 'binary' needs a 'target' column"),
        ("task: binary\ntarget: y\n", r"mlplan.yaml:1: project: required field is missing"),
        (
            MINIMAL + "slices:\n  - {name: g, columns: [gender], where: 'age > 3'}\n",
            r"mlplan.yaml:5: slices.0: slice 'g' must define exactly one of",
        ),
        (
            MINIMAL + "risks:\n  - {id: r1, description: d, slice: nope}\n",
            r"risk 'r1' names slice 'nope', which is not defined",
        ),
        (
            MINIMAL + "rollout:\n  steps: [{weight: 50}, {weight: 5}]\n",
            r"canary step weights must not decrease; got \[50.0, 5.0\]",
        ),
        (
            MINIMAL + "rollout:\n  steps: [{weight: 150}]\n",
            r"rollout.steps.0.weight: Input should be less than or equal to 100",
        ),
        (
            MINIMAL + "datasets:\n  c: {collected: {start: 2025-02-01, end: 2025-01-01}}\n",
            r"collection period ends \(2025-01-01\) before it starts",
        ),
        ("project: [\n", r"mlplan.yaml:\d+: not valid YAML"),
        ("", r"mlplan.yaml:1: the plan is empty"),
        ("- a\n- b\n", r"the plan must be a mapping"),
        (MINIMAL + "task: regression\n", r"mlplan.yaml:\d+: not valid YAML: found duplicate key"),
        (
            MINIMAL + "rollout:\n  steps: [{weight: 5}, {weight: 50}]\n",
            r"the last canary step must take all traffic \(100\); got \[5.0, 50.0\]",
        ),
        (
            MINIMAL
            + "monitoring:\n  input: [{name: d, metric: psi, threshold: 1, window: soon}]\n",
            r"mlplan.yaml:5: monitoring.input.0.window: duration 'soon' must be a number and a",
        ),
        (
            MINIMAL + "rollout:\n  guards: [{metric: err, op: '<', threshold: 1, slice: nope}]\n",
            r"rollout.guards\[0\] names slice 'nope', which is not defined",
        ),
        (
            MINIMAL
            + "monitoring:\n  input: [{name: gaps, metric: features.age.missing, threshold: 1}]\n"
            + "rollout:\n  guards: [{rule: nope}]\n",
            r"rollout.guards\[0\].rule 'nope' is not a rule of the monitoring section; "
            r"rules: input.gaps",
        ),
        (
            MINIMAL
            + "monitoring:\n  input: [{name: gaps, metric: features.age.missing, threshold: 1}]\n"
            + "rollout:\n  guards: [{rule: gaps, metric: error_rate}]\n",
            r"a guard naming rule 'gaps' takes the rule's metric, op, threshold, slice and "
            r"min_samples; remove metric, or the rule",
        ),
        (
            MINIMAL
            + "monitoring:\n  input: [{name: x, metric: a, threshold: 1}]\n"
            + "  output: [{name: x, metric: b, threshold: 1}]\n"
            + "rollout:\n  guards: [{rule: x}]\n",
            r"rollout.guards\[0\].rule 'x' names a rule of input and output; give it as "
            r"input.x or output.x",
        ),
        (
            MINIMAL + "rollout:\n  guards: [{metric: error_rate, op: '<'}]\n",
            r"a guard needs either rule \(a monitoring rule's name\) or metric, op and "
            r"threshold; missing: threshold",
        ),
        (
            MINIMAL + "gates:\n  max_gaps: [{slice: nope, metric: recall, max_gap: 0.1}]\n",
            r"gates.max_gaps\[0\] names slice 'nope'",
        ),
        (
            MINIMAL + "slices:\n  - {name: s, where: \"1=1; COPY t TO 'x'\"}\n",
            r"must be one SQL boolean expression, without ';' or comments",
        ),
        (
            MINIMAL + "risks:\n  - {id: r, description: d, monitor: nope}\n",
            r"risk 'r' names monitor 'nope', which is not defined",
        ),
        (
            MINIMAL + "datasets:\n  c: {path: c.csv, delimiter: '::'}\n",
            r"mlplan.yaml:\d+: datasets.c.delimiter: delimiter must be one character \(not a quote "
            r"or a line break\) or one of comma, semicolon, tab, pipe; got '::'",
        ),
        (
            MINIMAL + "datasets:\n  c: {path: c.parquet, format: parquet, delimiter: ';'}\n",
            r"delimiter is for CSV files; format is parquet",
        ),
        (
            MINIMAL + "evaluation:\n  threshold: recal>=0.6\n",
            r"mlplan.yaml:5: evaluation.threshold: threshold must be a number in \(0, 1\), f1, "
            r"youden or recall>=X with X in \(0, 1\]; got 'recal>=0.6'$",
        ),
        (
            MINIMAL + "evaluation:\n  threshold: recall>=60\n",
            r"mlplan.yaml:5: evaluation.threshold: the recall floor of threshold 'recall>=60' "
            r"must be in \(0, 1\]; e.g. recall>=0.6$",
        ),
        (
            MINIMAL + "evaluation:\n  threshold: 1.5\n",
            r"mlplan.yaml:5: evaluation.threshold: threshold must be in \(0, 1\); got 1.5$",
        ),
        (
            MINIMAL + 'datasets:\n  c:\n    path: c.csv\n    id_column: ""\n',
            r"mlplan.yaml:\d+: datasets.c.id_column: .*names no column .*write null",
        ),
    ],
    ids=[
        "typo-top",
        "typo-nested-no-match",
        "typo-deep",
        "bad-literal",
        "no-target",
        "no-project",
        "slice-two-kinds",
        "risk-unknown-slice",
        "ramp-down",
        "weight-range",
        "period-order",
        "yaml-syntax",
        "empty",
        "not-mapping",
        "duplicate-key",
        "ramp-end",
        "monitor-window",
        "guard-slice",
        "guard-unknown-rule",
        "guard-rule-and-metric",
        "guard-rule-two-families",
        "guard-no-threshold",
        "gate-slice",
        "where-injection",
        "risk-monitor",
        "delimiter-not-one",
        "delimiter-not-csv",
        "threshold-criterion",
        "threshold-recall-floor",
        "threshold-range",
        "id-column-empty",
    ],
)
def test_invalid_plans_name_line_and_field(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_plan(text)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("recall>=0.6", "recall>=0.6"),
        ("'recall >= .75'", "recall>=0.75"),
        ("youden", "youden"),
        ("0.3", 0.3),
        ("recall>=1", "recall>=1"),
    ],
)
def test_a_threshold_is_a_number_a_criterion_or_a_recall_floor(
    given: str, kept: float | str
) -> None:
    plan = parse_plan(MINIMAL + f"evaluation:\n  threshold: {given}\n")
    assert plan.evaluation.threshold == kept


def test_every_problem_is_listed_once() -> None:
    text = "project: {name: churn, ownr: x}\ntask: binar\ntarget: y\nslcies: []\n"
    with pytest.raises(PlanError) as caught:
        parse_plan(text)
    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("mlplan.yaml:1: unknown key 'ownr' — did you mean 'owner'?")
    assert str(caught.value).startswith("mlplan.yaml: 3 problems in the plan:")


def test_missing_plan_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"no plan file here. Create one with: mlplan init"):
        load_plan(tmp_path / "mlplan.yaml")


@pytest.mark.parametrize(
    "task", ["regression", "binary", "multiclass", "image_classification", "sequence"]
)
def test_init_template_is_a_valid_complete_plan(task: str) -> None:
    text = render_plan(
        "proj",
        task=task,  # type: ignore[arg-type]
        target=None if task == "image_classification" else "y",
    )
    plan = parse_plan(text)
    assert plan.task == task
    # Every section of the lifecycle has its place, written out for the user to edit.
    for section in (
        "project:",
        "scenario:",
        "datasets:",
        "labels:",
        "metrics:",
        "slices:",
        "baselines:",
        "risks:",
        "deployment:",
        "rollout:",
        "monitoring:",
        "approvals:",
    ):
        assert f"\n{section}" in text
    assert plan.metrics.primary is not None
    assert "TODO" in text  # what only people can say is left for them, visibly


def test_example_plan_is_valid() -> None:
    plan = load_plan(REPO / "examples" / "churn" / "mlplan.yaml")
    assert plan.rollout_strategy == "shadow"
    assert {s.name for s in plan.slices} >= {"gender", "ethnicity", "gender_x_ethnicity"}


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_validator_only_raises_mlplan_errors(text: str) -> None:
    with contextlib.suppress(MlplanError):
        parse_plan(text)


@settings(max_examples=40, deadline=None)
@given(
    name=st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
    task=st.sampled_from(["regression", "binary", "multiclass", "sequence"]),
    target=st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
)
def test_plan_round_trips_through_json(name: str, task: str, target: str) -> None:
    plan = parse_plan(render_plan(name, task=task, target=target))  # type: ignore[arg-type]
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again == plan


def test_init_writes_a_quoted_project_key_so_it_stays_text() -> None:
    import re

    text = render_plan("churn", task="binary", target="churned")
    key = re.search(r'\n  key: "([0-9a-f]{12})"', text)
    assert key is not None
    assert parse_plan(text).project.store_key == key.group(1)
    # Unquoted, a hex key can read as a number; the plan then says so.
    with pytest.raises(PlanError, match=r"project.key: Input should be a valid string; got inf"):
        parse_plan(text.replace(f'key: "{key.group(1)}"', "key: 2e1000000000"))
    assert parse_plan(MINIMAL).project.store_key == "name:churn"  # no key: the name


def test_rare_categories_default_to_ten_training_rows_and_one_keeps_all() -> None:
    assert parse_plan(MINIMAL).modeling.min_frequency == 10
    assert parse_plan(MINIMAL + "modeling: {min_frequency: 1}\n").modeling.min_frequency == 1
    with pytest.raises(
        PlanError,
        match=r"mlplan.yaml:5: modeling.min_frequency: Input should be greater than or equal to 1",
    ):
        parse_plan(MINIMAL + "modeling:\n  min_frequency: 0\n")


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    """``$`` matches before a final newline, so names are checked with a full match."""
    with pytest.raises(PlanError, match=r"project.name"):
        parse_plan(MINIMAL.replace("{name: churn}", '{name: "churn\\n"}'))


def test_the_training_device_is_auto_cpu_or_cuda() -> None:
    assert parse_plan(MINIMAL).modeling.device == "auto"
    assert parse_plan(MINIMAL + "modeling: {device: cuda}\n").modeling.device == "cuda"
    with pytest.raises(
        PlanError,
        match=r"^mlplan.yaml:5: modeling.device: Input should be 'auto', 'cpu' or 'cuda'.*"
        r"got 'tpu'",
    ):
        parse_plan(MINIMAL + "modeling:\n  device: tpu\n")


_ROLLOUT_BASE = "project: {name: churn}\ntask: binary\ntarget: churned\n"


def test_rollout_settings_load_and_bad_ones_are_named() -> None:
    plan = parse_plan(
        _ROLLOUT_BASE
        + "rollout:\n  interval: 30s\n  failure_limit: 2\n  sticky: header:X-User-Id\n"
        "  shadow_share: 25\n  smoke:\n    - {records: [{a: 1}], labels: ['yes']}\n"
    )
    rollout = plan.rollout
    assert (rollout.interval, rollout.failure_limit, rollout.sticky) == (
        "30s",
        2,
        "header:X-User-Id",
    )
    assert rollout.shadow_share == 25 and rollout.smoke[0].labels == ["yes"]
    for bad, message in (
        ("  sticky: cookie:uid\n", "header:NAME"),
        ("  interval: soon\n", "duration"),
        ("  shadow_share: 0\n", "shadow_share"),
        ("  smoke:\n    - {records: [{a: 1}], labels: [x, y]}\n", "2 labels for 1 records"),
        ("  approval_above: 50\n", "no gate 'promote'"),
    ):
        with pytest.raises(PlanError, match=message):
            parse_plan(_ROLLOUT_BASE + "rollout:\n" + bad)
    signed = parse_plan(
        _ROLLOUT_BASE
        + "rollout: {approval_above: 50}\napprovals:\n  - {gate: promote, role: product_owner}\n"
    )
    assert signed.rollout.approval_above == 50
