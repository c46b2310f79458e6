"""mlplan rollout export: the manifests each controller is handed hold the fields its published
CRD defines (JSON Schemas of the fields used, tests/rollout/schemas/), the core objects read
back into the kubernetes client's models, and the plan's steps, durations, interval and
failure limit are the controller's own; no cluster needed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kubernetes import client as k8s
from ruamel.yaml import YAML
from tests.conftest import edit_plan, ok

from mlplan.errors import DeploymentNotFoundError, ParameterError
from mlplan.rollout import export_rollout, move_rollout, rollout_status, start_rollout
from mlplan.workspace import Workspace, get_deployment

SCHEMAS = Path(__file__).with_name("schemas")


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _docs(text: str) -> dict[str, list[dict[str, Any]]]:
    """The YAML's documents by kind."""
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in YAML(typ="safe", pure=True).load_all(io.StringIO(text)):
        found.setdefault(doc["kind"], []).append(doc)
    return found


def _read(obj: dict[str, Any], model: str) -> Any:
    """A manifest's object back into the kubernetes client's model, as its API reads one."""
    return k8s.ApiClient().deserialize(json.dumps(obj), model, "application/json")


def _models(ws: Workspace) -> tuple[str, str]:
    """The deployment's stable model and its newest rollout's candidate."""
    return get_deployment(ws).model_ref, rollout_status(ws, "production")[0].candidate


def _valid(doc: dict[str, Any], schema: str) -> None:
    jsonschema.validate(doc, _schema(schema), cls=jsonschema.Draft202012Validator)


@pytest.fixture
def canary(live: Workspace) -> Workspace:
    """live with a plan whose analysis runs every 30s and rolls back at the third failure,
    and a canary of logistic-2 under way."""
    edit_plan(live, "interval: 1m ", "interval: 30s ")
    edit_plan(live, "failure_limit: 1 ", "failure_limit: 3 ")
    start_rollout(live, "logistic-2", strategy="canary", by="Ana")
    return live


def _pod(template: Any, candidate: str, secret: str) -> None:
    """The pod template serves ``candidate`` on 8080 and reads the store's URL from
    ``secret``."""
    (container,) = template.spec.containers
    assert container.image == "registry.example.com/churn:7"
    assert container.args[:2] == ["serve", candidate]
    assert [(p.name, p.container_port) for p in container.ports] == [("http", 8080)]
    (env,) = container.env
    assert env.name == "MLPLAN_STORE_URL" and env.value is None
    assert env.value_from.secret_key_ref.to_dict() == {
        "name": secret,
        "key": "url",
        "optional": None,
    }
    assert container.readiness_probe.http_get.path == "/v2/health/ready"


def test_argo_canary_holds_the_plans_steps_and_asks_mlplan(canary: Workspace) -> None:
    text = export_rollout(
        canary,
        "production",
        "argo",
        image="registry.example.com/churn:7",
        namespace="ml",
        analysis_url="http://mlplan.ml:8080/",
        replicas=20,
    )
    stable, candidate = _models(canary)
    docs = _docs(text)
    assert sorted(docs) == ["AnalysisTemplate", "Rollout", "Service"]
    (rollout,) = docs["Rollout"]
    _valid(rollout, "argo-rollout")
    for template in docs["AnalysisTemplate"]:
        _valid(template, "argo-analysistemplate")
    strategy = rollout["spec"]["strategy"]["canary"]
    # 5 % for 30m, 25 % for 1h, 50 % for 1h, 100 % for a day (Go has no days), each then judged
    assert strategy["steps"] == [
        s
        for weight, duration in [(5, "30m"), (25, "1h"), (50, "1h"), (100, "24h")]
        for s in (
            {"setWeight": weight},
            {"pause": {"duration": duration}},
            {"analysis": {"templates": [{"templateName": "churn-production-mlplan-verdict"}]}},
        )
    ]
    assert strategy["analysis"] == {
        "templates": [{"templateName": "churn-production-mlplan-guard"}],
        "startingStep": 1,
    }
    by_name = {t["metadata"]["name"]: t["spec"] for t in docs["AnalysisTemplate"]}
    guard = by_name["churn-production-mlplan-guard"]["metrics"][0]
    verdict = by_name["churn-production-mlplan-verdict"]["metrics"][0]
    # While a step holds: every 30s until the rollout ends; Argo fails past failureLimit
    # failures, the plan rolls back at its third, so 2 are tolerated.
    assert (guard["interval"], guard["failureLimit"], "count" in guard) == ("30s", 2, False)
    # Once the step ends: one read decides; inconclusive matches neither (Argo pauses).
    assert (verdict["count"], "failureLimit" in verdict) == (1, False)
    assert guard["failureCondition"] == verdict["failureCondition"] == 'result == "fail"'
    assert (guard["successCondition"], verdict["successCondition"]) == (
        'result != "fail"',
        'result == "pass"',
    )
    web = verdict["provider"]["web"]
    assert web["url"] == "http://mlplan.ml:8080/v1/rollouts/production/analysis"
    assert web["jsonPath"] == "{$.verdict}"
    assert web["headers"] == [{"key": "Authorization", "value": "Bearer {{args.api-key}}"}]
    (arg,) = by_name["churn-production-mlplan-verdict"]["args"]
    assert arg["valueFrom"]["secretKeyRef"] == {
        "name": "churn-production-mlplan-admin",
        "key": "api-key",
    }
    services = [_read(s, "V1Service") for s in docs["Service"]]
    assert sorted(s.metadata.name for s in services) == [
        strategy["canaryService"],
        strategy["stableService"],
    ]
    for service in services:
        assert service.metadata.namespace == "ml"
        assert [(p.port, p.target_port) for p in service.spec.ports] == [(8080, "http")]
        assert service.spec.selector == rollout["spec"]["selector"]["matchLabels"]
    assert rollout["spec"]["replicas"] == 20
    template = _read(rollout["spec"]["template"], "V1PodTemplateSpec")
    _pod(template, candidate, "churn-production-mlplan-store")
    assert template.metadata.labels == rollout["spec"]["selector"]["matchLabels"]
    assert rollout["metadata"]["annotations"]["mlplan.dev/stable-model"] == stable
    assert text.startswith(
        f"# mlplan rollout export production --format argo: canary rollout of {candidate} "
        f"over {stable}\n"
    )


def test_argo_blue_green_switches_on_the_verdict_and_keeps_blue(live: Workspace) -> None:
    edit_plan(live, "approval_above: null", "approval_above: null\n  rollback_window: 2h")
    start_rollout(live, "logistic-2", strategy="blue-green", by="Ana")
    docs = _docs(export_rollout(live, "production", "argo"))
    (rollout,) = docs["Rollout"]
    _valid(rollout, "argo-rollout")
    blue_green = rollout["spec"]["strategy"]["blueGreen"]
    assert blue_green["prePromotionAnalysis"]["templates"] == [
        {"templateName": "churn-production-mlplan-verdict"}
    ]
    assert blue_green["postPromotionAnalysis"]["templates"] == [
        {"templateName": "churn-production-mlplan-guard"}
    ]
    assert blue_green["scaleDownDelaySeconds"] == 7200
    by_name = {t["metadata"]["name"]: t["spec"] for t in docs["AnalysisTemplate"]}
    # After the switch the guard reads every minute through the 2h window, then completes.
    guard = by_name["churn-production-mlplan-guard"]["metrics"][0]
    assert (guard["interval"], guard["count"], guard["failureLimit"]) == ("1m", 120, 0)
    assert sorted(s["metadata"]["name"] for s in docs["Service"]) == sorted(
        [blue_green["activeService"], blue_green["previewService"]]
    )
    # Flagger: analyses of green, then the switch once mlplan's verdict passes.
    (flagger,) = _docs(export_rollout(live, "production", "flagger"))["Canary"]
    _valid(flagger, "flagger-canary")
    analysis = flagger["spec"]["analysis"]
    assert analysis["iterations"] == 1 and "stepWeights" not in analysis
    assert {h["type"] for h in analysis["webhooks"]} == {"rollout", "confirm-promotion"}
    # The default analysis URL is the stable model's Service in the namespace.
    web = docs["AnalysisTemplate"][0]["spec"]["metrics"][0]["provider"]["web"]
    assert web["url"] == (
        "http://churn-production-stable.default.svc.cluster.local:8080"
        "/v1/rollouts/production/analysis"
    )


def test_flagger_canary_reads_the_verdict_through_its_load_tester(canary: Workspace) -> None:
    text = export_rollout(canary, "production", "flagger", image="registry.example.com/churn:7")
    docs = _docs(text)
    assert sorted(docs) == ["Canary", "Deployment"]
    (canary_doc,) = docs["Canary"]
    _valid(canary_doc, "flagger-canary")
    deployment = _read(docs["Deployment"][0], "V1Deployment")
    assert deployment.spec.replicas == 2
    _pod(deployment.spec.template, _models(canary)[1], "churn-production-mlplan-store")
    assert canary_doc["spec"]["targetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment.metadata.name,
    }
    analysis = canary_doc["spec"]["analysis"]
    assert (analysis["interval"], analysis["threshold"]) == ("30s", 3)
    assert (analysis["stepWeights"], analysis["maxWeight"]) == ([5, 25, 50, 100], 100)
    hooks = {h["type"]: h for h in analysis["webhooks"]}
    assert sorted(hooks) == ["confirm-promotion", "rollout"]
    for hook in hooks.values():
        assert hook["url"] == "http://flagger-loadtester.default/"
        assert hook["metadata"]["type"] == "bash"  # the load tester's blocking command
        assert '"Authorization: Bearer $MLPLAN_ADMIN_KEY"' in hook["metadata"]["cmd"]
        assert "/v1/rollouts/production/analysis" in hook["metadata"]["cmd"]
    assert hooks["rollout"]["metadata"]["cmd"].endswith("""jq -e '.verdict != "fail"'""")
    assert hooks["confirm-promotion"]["metadata"]["cmd"].endswith("""jq -e '.verdict == "pass"'""")
    assert "per-step durations have no Flagger equivalent" in text


def test_flagger_mirrors_a_shadow_with_istio(live: Workspace) -> None:
    edit_plan(live, "shadow_share: 100 ", "shadow_share: 40 ")
    start_rollout(live, "logistic-2", strategy="shadow", by="Ana")
    text = export_rollout(live, "production", "flagger")
    (canary_doc,) = _docs(text)["Canary"]
    _valid(canary_doc, "flagger-canary")
    analysis = canary_doc["spec"]["analysis"]
    assert canary_doc["spec"]["provider"] == "istio"
    assert (analysis["mirror"], analysis["mirrorWeight"], analysis["iterations"]) == (True, 40, 1)
    assert "stepWeights" not in analysis
    assert "with Istio only" in text


def test_kserve_splits_by_the_rollouts_weight(canary: Workspace) -> None:
    text = export_rollout(canary, "production", "kserve", image="registry.example.com/churn:7")
    (service,) = _docs(text)["InferenceService"]
    _valid(service, "kserve-inferenceservice")
    predictor = service["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 5  # pending: the first step's share
    container = _read(predictor["containers"][0], "V1Container")
    assert container.args[:2] == ["serve", _models(canary)[1]]
    assert container.args[-2:] == ["--project", "/mnt/models"]
    env = {e.name: e for e in container.env}
    assert env["STORAGE_URI"].value == "STORAGE-URI-OF-THE-PROJECT-FOLDER"
    assert env["MLPLAN_STORE_URL"].value_from.secret_key_ref.name == (
        "churn-production-mlplan-store"
    )
    assert "fill STORAGE_URI" in text
    assert "api-key" not in text  # KServe asks mlplan nothing
    # Under way, the rollout's own share: the controller started it and reached 25 %.
    for action in ("start", "advance", "advance"):
        move_rollout(canary, "production", action, actor_kind="controller", by="controller")
    (service,) = _docs(export_rollout(canary, "production", "kserve"))["InferenceService"]
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 25


def test_bad_input_is_refused_with_a_clear_error(live: Workspace) -> None:
    with pytest.raises(DeploymentNotFoundError, match="no deployment 'staging'"):
        export_rollout(live, "staging", "argo")
    with pytest.raises(ParameterError, match="'helm': use one of argo, flagger, kserve"):
        export_rollout(live, "production", "helm")
    with pytest.raises(ParameterError, match="'ML': a Kubernetes namespace"):
        export_rollout(live, "production", "argo", namespace="ML")
    with pytest.raises(ParameterError, match="give http"):
        export_rollout(live, "production", "argo", analysis_url="mlplan:8080")
    # Without a rollout, the stable model is exported with the plan's strategy for the next.
    stable = get_deployment(live).model_ref
    text = export_rollout(live, "production", "kserve")
    (service,) = _docs(text)["InferenceService"]
    assert service["spec"]["predictor"]["containers"][0]["args"][1] == stable
    assert f"{stable} (no active rollout; the plan's canary for the next)" in text
    # A shadow has no Argo nor KServe equivalent.
    start_rollout(live, "logistic-2", strategy="shadow", by="Ana")
    for fmt in ("argo", "kserve"):
        with pytest.raises(ParameterError, match=rf"{fmt}: production's rollout is a shadow") as e:
            export_rollout(live, "production", fmt)
        assert "--format" in str(e.value) and "--format flagger" in str(e.value)


def test_the_command_prints_or_writes_the_manifests(canary: Workspace, cli: Any) -> None:
    shown = ok(cli("rollout", "export", "production", "--format", "argo"))
    assert shown.stdout.startswith("# mlplan rollout export production --format argo")
    assert "kind: Rollout" in shown.stdout
    said = " ".join(shown.stderr.split())
    assert "Secret churn-production-mlplan-admin (key api-key)" in said
    out = canary.root / "k8s" / "production.yaml"
    wrote = ok(cli("rollout", "export", "production", "--format", "flagger", "--out", str(out)))
    assert wrote.stdout == ""
    assert f"Wrote Deployment, Canary to {out}" in " ".join(wrote.stderr.split())
    assert _docs(out.read_text())["Canary"][0]["spec"]["analysis"]["threshold"] == 3
    assert [p.name for p in out.parent.iterdir()] == ["production.yaml"]  # no temporary left
    start = out.read_text()
    for args, code, message in [
        (["staging", "--format", "argo"], 1, "no deployment 'staging'"),
        (["production", "--format", "helm"], 2, "--format"),
        (["production", "--format", "argo", "--namespace", "ML"], 2, "--namespace 'ML'"),
    ]:
        refused = cli("rollout", "export", *args, "--out", str(out))
        assert refused.exit_code == code, refused.output
        assert message in " ".join(refused.stderr.split())
    assert out.read_text() == start  # nothing half-written over it
