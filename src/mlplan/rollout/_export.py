"""A deployment's rollout as Kubernetes manifests: Argo Rollouts, Flagger or KServe drives the
traffic, mlplan judges it (``mlplan rollout export NAME --format argo|flagger|kserve``).

The pods run ``mlplan serve`` on one exact package version: the candidate of the deployment's
active rollout, else its stable model (a controller canaries the change of pod template from
what runs to what is applied). The plan's ``rollout:`` section becomes each project's own
terms:

- **argo**: a ``Rollout``. A canary holds each step (``setWeight``, then ``pause`` for the
  step's duration) and then reads mlplan's verdict once (an ``analysis`` step): ``pass`` moves
  on, ``fail`` rolls back, ``inconclusive`` matches neither condition and is Argo's
  inconclusive, which pauses the rollout for a person, as mlplan's does. A background
  analysis reads the verdict every ``interval`` while the steps hold and rolls back at the
  plan's ``failure_limit``-th ``fail`` (Argo's ``failureLimit`` counts the failures it
  tolerates, so it gets one less). Blue-green: ``activeService`` / ``previewService``, the
  verdict before the switch (``prePromotionAnalysis``), the guard through the plan's
  ``rollback_window`` after it (``postPromotionAnalysis``), blue kept as long
  (``scaleDownDelaySeconds``). Both analyses are ``AnalysisTemplate`` objects whose web metric
  reads ``GET {analysis_url}/v1/rollouts/NAME/analysis`` (its ``verdict``) with the admin
  key from a Secret. A shadow has no Argo equivalent (Argo mirrors traffic only through a
  service mesh's routes, which mlplan does not configure): refused, naming what to use.
- **flagger**: a ``Canary`` over a ``Deployment``. Flagger has no metric provider that reads
  an HTTP JSON answer (its ``MetricTemplate`` providers are monitoring systems), and a webhook
  is judged by its status code alone, POSTed with Flagger's own payload. So mlplan's verdict is
  read by Flagger's load tester (``flagger-loadtester``, whose image has ``curl`` and ``jq``)
  running a blocking ``bash`` command: a ``rollout`` webhook that fails on a ``fail`` verdict
  (each failure counts towards ``threshold`` = the plan's ``failure_limit``), and a
  ``confirm-promotion`` webhook that holds the promotion until the verdict is ``pass``
  (inconclusive never promotes). Flagger holds each step one ``interval``: the plan's
  per-step durations have no Flagger equivalent, and an inconclusive verdict does not hold a
  step (a ``confirm-traffic-increase`` hook would, but it also runs before the first step,
  when there is nothing yet to judge). Blue-green: ``iterations`` without step
  weights; a shadow: Flagger's traffic mirroring (``mirror``, Istio only).
- **kserve**: an ``InferenceService`` (v1beta1) whose predictor is mlplan's container,
  ``predictor.canaryTrafficPercent`` the rollout's weight (or its first step's), the project's
  files from a ``STORAGE_URI`` the user fills. KServe runs no analysis: a person moves the
  percentage as ``mlplan rollout status`` judges. Blue-green is 0 percent with tag routing (the
  candidate reachable on its own URL); a shadow has no KServe equivalent: refused.

The core objects (``Deployment``, ``Service``, the pod template and its Secret references) are
built with the official ``kubernetes`` client's models; the custom resources are plain dicts
of the fields their published CRDs define.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ruamel.yaml import YAML

from mlplan._optional import require
from mlplan._version import __version__
from mlplan.errors import ParameterError, RolloutNotFoundError
from mlplan.plan import Plan, RolloutSpec
from mlplan.rollout._rollouts import RolloutInfo, rollout_status
from mlplan.workspace import Workspace, get_deployment

__all__ = ["EXPORT_FORMATS", "ExportFormat", "export_rollout"]

ExportFormat = Literal["argo", "flagger", "kserve"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)

_PORT = 8080
_KEY_FIELD = "api-key"  # the admin key's field in its Secret
_STORE_FIELD = "url"  # MLPLAN_STORE_URL's field in the store's Secret
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def export_rollout(
    ws: Workspace,
    name: str,
    format: ExportFormat,
    *,
    image: str | None = None,
    namespace: str = "default",
    analysis_url: str | None = None,
    replicas: int = 2,
) -> str:
    """The manifests (multi-document YAML, its notes as comments) that roll the deployment
    ``name`` out on Kubernetes with ``format``'s controller: ``argo`` (Argo Rollouts),
    ``flagger`` or ``kserve``; see the module's docstring for how each maps the plan.

    ``image`` holds ``mlplan[serving,postgres]`` and the project's folder at ``/project``
    (default ``mlplan:VERSION``); the pods read the store's URL and the controllers the admin
    API key from Secrets, never from the manifests. ``analysis_url`` is where a controller
    reaches mlplan's analysis (default: the stable Service in ``namespace``).

    Raises
    ------
    ParameterError
        An unknown format, a strategy the format has no equivalent for (a shadow on Argo or
        KServe), fewer than one replica, a namespace or URL Kubernetes would refuse.
    DeploymentNotFoundError
        No deployment ``name``.
    """
    if format not in EXPORT_FORMATS:
        raise ParameterError(
            "format", f"{{param}} {format!r}: use one of {', '.join(EXPORT_FORMATS)}"
        )
    if replicas < 1:
        raise ParameterError("replicas", f"{{param}} {replicas}: at least 1")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
        raise ParameterError(
            "namespace",
            f"{{param}} {namespace!r}: a Kubernetes namespace is lowercase letters, digits "
            "and '-', at most 63",
        )
    if analysis_url is not None and not re.match(r"https?://[^/\s]+", analysis_url):
        raise ParameterError(
            "analysis_url", f"{{param}} {analysis_url!r}: give http(s)://HOST[:PORT]"
        )
    deployment = get_deployment(ws, name)
    rollout = _active(ws, name)
    strategy = rollout.strategy if rollout is not None else ws.plan.rollout_strategy
    model = rollout.candidate if rollout is not None else deployment.model_ref
    target = _Target(
        deployment=name,
        rollout=rollout,
        strategy=strategy,
        model=model,
        stable=deployment.model_ref,
        base=_dns(f"{ws.plan.project.name}-{name}"),
        image=image or f"mlplan:{__version__}",
        namespace=namespace,
        replicas=replicas,
        plan=ws.plan,
    )
    builder = {"argo": _argo, "flagger": _flagger, "kserve": _kserve}[format]
    documents, notes = builder(target, analysis_url)
    return _dump(target, format, documents, notes)


@dataclass(frozen=True, kw_only=True)
class _Target:
    """What one export is about: the deployment, its active rollout (None: none), the
    strategy and the model the pods serve, its stable model, the objects' base name, and
    the plan's terms."""

    deployment: str
    rollout: RolloutInfo | None
    strategy: str
    model: str
    stable: str
    base: str
    image: str
    namespace: str
    replicas: int
    plan: Plan

    @property
    def spec(self) -> RolloutSpec:
        """The plan's rollout section."""
        return self.plan.rollout

    @property
    def labels(self) -> dict[str, str]:
        """The labels every object carries and the selectors match."""
        return {
            "app.kubernetes.io/name": self.base,
            "app.kubernetes.io/managed-by": "mlplan",
            "mlplan.dev/deployment": _dns(self.deployment),
        }

    @property
    def key_secret(self) -> str:
        """The Secret holding the admin API key a controller sends to mlplan."""
        return f"{self.base}-mlplan-admin"

    @property
    def store_secret(self) -> str:
        """The Secret holding the store's URL the pods connect to."""
        return f"{self.base}-mlplan-store"

    def analysis_path(self) -> str:
        """mlplan's analysis of this deployment's rollout, as a path."""
        return f"/v1/rollouts/{self.deployment}/analysis"

    def metadata(self, name: str, **extra: Any) -> dict[str, Any]:
        """An object's metadata: its name, the namespace and the labels."""
        return {"name": name, "namespace": self.namespace, "labels": self.labels, **extra}


def _active(ws: Workspace, name: str) -> RolloutInfo | None:
    """The deployment's active rollout, None when it has none."""
    try:
        (newest,) = rollout_status(ws, name)
    except RolloutNotFoundError:
        return None
    return newest if newest.active else None


def _dns(text: str) -> str:
    """``text`` as a Kubernetes name (DNS-1123 label): lowercase, '-' for the rest, short
    enough to take a suffix."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:40].rstrip("-") or "mlplan"


def _go_duration(value: str) -> str:
    """A plan duration (``30s``, ``10m``, ``2h``, ``1d``) as Go parses one (no days)."""
    number, unit = int(value[:-1]), value[-1]
    return f"{number * 24}h" if unit == "d" else value


def _seconds(value: str) -> int:
    """A plan duration in seconds."""
    return int(value[:-1]) * _SECONDS[value[-1]]


def _k8s() -> Any:
    """The ``kubernetes`` client's models (the ``kubernetes`` extra)."""
    return require("kubernetes.client", extra="kubernetes", purpose="mlplan rollout export")


def _plain(obj: Any) -> dict[str, Any]:
    """A ``kubernetes`` model as the plain dict its API takes (camelCase, no Nones)."""
    client = _k8s()
    result: dict[str, Any] = client.ApiClient().sanitize_for_serialization(obj)
    return result


def _pod_template(t: _Target, *, args: list[str] | None = None) -> Any:
    """The pod template: ``mlplan serve`` on the exported model, its probes, the store's URL
    from a Secret, the plan's compute per replica."""
    k = _k8s()
    compute = t.plan.deployment.compute
    limits: dict[str, str] = {}
    if compute.cpus is not None:
        limits["cpu"] = f"{compute.cpus:g}"
    if compute.memory_gb is not None:
        limits["memory"] = f"{math.ceil(compute.memory_gb * 1024)}Mi"
    if compute.gpus:
        limits["nvidia.com/gpu"] = str(compute.gpus)
    probe = {
        path: k.V1Probe(http_get=k.V1HTTPGetAction(path=path, port="http"), period_seconds=5)
        for path in ("/v2/health/live", "/v2/health/ready")
    }
    container = k.V1Container(
        name="mlplan",
        image=t.image,
        args=args
        or ["serve", t.model, "--host", "0.0.0.0", "--port", str(_PORT), "--project", "/project"],
        ports=[k.V1ContainerPort(name="http", container_port=_PORT, protocol="TCP")],
        env=[
            k.V1EnvVar(
                name="MLPLAN_STORE_URL",
                value_from=k.V1EnvVarSource(
                    secret_key_ref=k.V1SecretKeySelector(name=t.store_secret, key=_STORE_FIELD)
                ),
            )
        ],
        liveness_probe=probe["/v2/health/live"],
        readiness_probe=probe["/v2/health/ready"],
        resources=k.V1ResourceRequirements(requests=limits or None, limits=limits or None),
    )
    return k.V1PodTemplateSpec(
        metadata=k.V1ObjectMeta(labels=t.labels, annotations={"mlplan.dev/model": t.model}),
        spec=k.V1PodSpec(containers=[container]),
    )


def _service(t: _Target, name: str, role: str) -> dict[str, Any]:
    """A ClusterIP Service on the pods' ``http`` port (the controller narrows its selector)."""
    k = _k8s()
    return _plain(
        k.V1Service(
            api_version="v1",
            kind="Service",
            metadata=k.V1ObjectMeta(
                name=name,
                namespace=t.namespace,
                labels={**t.labels, "mlplan.dev/role": role},
            ),
            spec=k.V1ServiceSpec(
                selector=dict(t.labels),
                ports=[k.V1ServicePort(name="http", port=_PORT, target_port="http")],
            ),
        )
    )


def _deployment(t: _Target) -> dict[str, Any]:
    """An apps/v1 Deployment of the pods (Flagger's target)."""
    k = _k8s()
    return _plain(
        k.V1Deployment(
            api_version="apps/v1",
            kind="Deployment",
            metadata=k.V1ObjectMeta(name=t.base, namespace=t.namespace, labels=t.labels),
            spec=k.V1DeploymentSpec(
                replicas=t.replicas,
                selector=k.V1LabelSelector(match_labels=dict(t.labels)),
                template=_pod_template(t),
            ),
        )
    )


# -- Argo Rollouts ----------------------------------------------------------------------------


def _argo(t: _Target, analysis_url: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """A Rollout, its AnalysisTemplates and the Services it names."""
    if t.strategy == "shadow":
        raise ParameterError(
            "format",
            f"{{param}} argo: {t.deployment}'s rollout is a shadow, and Argo Rollouts has no "
            "shadow (it mirrors traffic only through a service mesh's routes, which mlplan "
            "does not configure). Export it with --format flagger (Flagger mirrors traffic "
            f"with Istio), or run the shadow with: mlplan serve --deployment {t.deployment}",
        )
    url = analysis_url or f"http://{t.base}-stable.{t.namespace}.svc.cluster.local:{_PORT}"
    url = url.rstrip("/") + t.analysis_path()
    spec = t.spec
    verdict = _argo_template(t, f"{t.base}-mlplan-verdict", url, guard=False)
    # Blue-green's guard watches the rollback window, then lets the rollout complete.
    window = _seconds(spec.rollback_window) // _seconds(spec.interval)
    count = max(1, window) if t.strategy == "blue_green" else None
    guard = _argo_template(t, f"{t.base}-mlplan-guard", url, guard=True, count=count)
    verdict_ref = {"templates": [{"templateName": verdict["metadata"]["name"]}]}
    guard_ref = {"templates": [{"templateName": guard["metadata"]["name"]}]}
    notes: list[str] = []
    if t.strategy == "blue_green":
        active, preview = f"{t.base}-active", f"{t.base}-preview"
        strategy: dict[str, Any] = {
            "blueGreen": {
                "activeService": active,
                "previewService": preview,
                "autoPromotionEnabled": True,
                "prePromotionAnalysis": verdict_ref,
                "postPromotionAnalysis": guard_ref,
                "scaleDownDelaySeconds": _seconds(spec.rollback_window),
            }
        }
        services = [_service(t, active, "active"), _service(t, preview, "preview")]
        notes.append(
            f"blue-green: green answers on {preview} until mlplan's verdict passes; blue "
            f"stays {spec.rollback_window} after the switch (scaleDownDelaySeconds)"
        )
    else:
        stable, canary = f"{t.base}-stable", f"{t.base}-canary"
        steps: list[dict[str, Any]] = []
        for step in spec.steps:
            steps.append({"setWeight": _percent(step.weight)})
            steps.append({"pause": {"duration": _go_duration(step.duration)}})
            steps.append({"analysis": verdict_ref})
        strategy = {
            "canary": {
                "stableService": stable,
                "canaryService": canary,
                "analysis": {**guard_ref, "startingStep": 1},
                "steps": steps,
            }
        }
        services = [_service(t, stable, "stable"), _service(t, canary, "canary")]
        notes.append(
            "canary: without spec.strategy.canary.trafficRouting (an ingress or a mesh) Argo "
            "approximates each weight with replica counts; add yours for exact shares"
        )
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": t.metadata(t.base, annotations={"mlplan.dev/stable-model": t.stable}),
        "spec": {
            "replicas": t.replicas,
            "selector": {"matchLabels": dict(t.labels)},
            "template": _plain(_pod_template(t)),
            "strategy": strategy,
        },
    }
    return [rollout, verdict, guard, *services], notes


def _argo_template(
    t: _Target, name: str, url: str, *, guard: bool, count: int | None = None
) -> dict[str, Any]:
    """An AnalysisTemplate whose web metric reads mlplan's verdict.

    A ``guard`` reads it every interval (``count`` times; None: until the rollout ends) and
    fails the run at the plan's ``failure_limit``-th ``fail``; ``pass`` and ``inconclusive``
    let it hold. Else one read, once a step ends: ``pass`` moves on, ``fail`` rolls back, and
    ``inconclusive`` (neither condition) is Argo's inconclusive, which pauses the rollout.
    """
    spec = t.spec
    web = {
        "url": url,
        "method": "GET",
        "headers": [{"key": "Authorization", "value": "Bearer {{args.api-key}}"}],
        "timeoutSeconds": 20,
        "jsonPath": "{$.verdict}",
    }
    metric: dict[str, Any]
    if guard:
        metric = {"name": "mlplan-guard", "interval": _go_duration(spec.interval)}
        if count is not None:
            metric["count"] = count
        metric |= {
            # Argo fails the run past failureLimit failures; the plan rolls back at its
            # failure_limit-th.
            "failureLimit": spec.failure_limit - 1,
            "successCondition": 'result != "fail"',
            "failureCondition": 'result == "fail"',
        }
    else:
        metric = {
            "name": "mlplan-verdict",
            "count": 1,
            "successCondition": 'result == "pass"',
            "failureCondition": 'result == "fail"',
        }
    metric["provider"] = {"web": web}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": t.metadata(name),
        "spec": {
            "args": [
                {
                    "name": "api-key",
                    "valueFrom": {"secretKeyRef": {"name": t.key_secret, "key": _KEY_FIELD}},
                }
            ],
            "metrics": [metric],
        },
    }


# -- Flagger ---------------------------------------------------------------------------------


def _flagger(t: _Target, analysis_url: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """A Canary over a Deployment, mlplan's verdict read by Flagger's load tester."""
    spec = t.spec
    url = analysis_url or f"http://{t.base}-primary.{t.namespace}.svc.cluster.local:{_PORT}"
    url = url.rstrip("/") + t.analysis_path()
    tester = f"http://flagger-loadtester.{t.namespace}/"
    read = f'curl -sf --max-time 20 -H "Authorization: Bearer $MLPLAN_ADMIN_KEY" {url}'
    analysis: dict[str, Any] = {
        "interval": _go_duration(spec.interval),
        "threshold": spec.failure_limit,
        "webhooks": [
            {
                "name": "mlplan-guard",
                "type": "rollout",
                "url": tester,
                "timeout": "30s",
                "metadata": {"type": "bash", "cmd": f"{read} | jq -e '.verdict != \"fail\"'"},
            },
            {
                "name": "mlplan-verdict",
                "type": "confirm-promotion",
                "url": tester,
                "timeout": "30s",
                "metadata": {"type": "bash", "cmd": f"{read} | jq -e '.verdict == \"pass\"'"},
            },
        ],
    }
    notes = [
        f"mlplan's verdict is read by flagger-loadtester in {t.namespace}: give its pod the "
        f"admin key as MLPLAN_ADMIN_KEY (env from Secret {t.key_secret}, key {_KEY_FIELD})"
    ]
    canary_spec: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.base},
        "service": {"port": _PORT, "targetPort": "http"},
        "analysis": analysis,
    }
    if t.strategy == "canary":
        weights = [_percent(s.weight) for s in spec.steps]
        analysis["stepWeights"] = weights
        analysis["maxWeight"] = weights[-1]
        notes.append(
            f"canary: Flagger holds each step one interval ({spec.interval}); the plan's "
            "per-step durations have no Flagger equivalent"
        )
    elif t.strategy == "blue_green":
        analysis["iterations"] = spec.failure_limit
        notes.append(
            f"blue-green: {spec.failure_limit} analyses of green before the switch; blue is "
            "not kept after it (no rollback window in Flagger)"
        )
    else:  # shadow
        canary_spec["provider"] = "istio"
        analysis["iterations"] = spec.failure_limit
        analysis["mirror"] = True
        analysis["mirrorWeight"] = _percent(spec.shadow_share)
        notes.append(
            f"shadow: Flagger mirrors {spec.shadow_share:g}% of requests to the candidate "
            "with Istio only (provider: istio); the promotion waits for mlplan's pass"
        )
    canary = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": t.metadata(t.base, annotations={"mlplan.dev/stable-model": t.stable}),
        "spec": canary_spec,
    }
    return [_deployment(t), canary], notes


# -- KServe ----------------------------------------------------------------------------------


def _kserve(t: _Target, analysis_url: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """An InferenceService whose predictor is mlplan's container."""
    del analysis_url  # KServe runs no analysis
    if t.strategy == "shadow":
        raise ParameterError(
            "format",
            f"{{param}} kserve: {t.deployment}'s rollout is a shadow, and KServe has no "
            "shadow (no traffic mirroring). Export it with --format flagger (Istio "
            f"mirroring), or run the shadow with: mlplan serve --deployment {t.deployment}",
        )
    k = _k8s()
    template = _pod_template(
        t,
        args=[
            "serve",
            t.model,
            "--host",
            "0.0.0.0",
            "--port",
            str(_PORT),
            "--project",
            "/mnt/models",
        ],
    )
    container = _plain(template.spec.containers[0])
    container["name"] = "kserve-container"
    # Knative names a port http1 or h2c only, and probes the container's own port by number.
    container["ports"] = [{"name": "http1", "containerPort": _PORT, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        container[probe]["httpGet"]["port"] = _PORT
    container["env"].append(
        _plain(k.V1EnvVar(name="STORAGE_URI", value="STORAGE-URI-OF-THE-PROJECT-FOLDER"))
    )
    annotations: dict[str, str] = {"mlplan.dev/stable-model": t.stable}
    if t.strategy == "blue_green":
        percent = 0
        annotations["serving.kserve.io/enable-tag-routing"] = "true"
        notes = [
            "blue-green: green takes 0% and answers on its own URL (tag routing, latest-); "
            "switch with canaryTrafficPercent: 100"
        ]
    else:
        weight = t.rollout.weight if t.rollout is not None else 0.0
        percent = _percent(weight or t.spec.steps[0].weight)
        notes = [
            f"canary: {percent}% of traffic to the candidate; KServe runs no analysis, so "
            f"move canaryTrafficPercent as mlplan rollout status {t.deployment} judges"
        ]
    notes.append(
        "fill STORAGE_URI: where KServe copies the project's folder (mlplan.yaml and its "
        ".mlplan artifacts) to /mnt/models"
    )
    service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": t.metadata(t.base, annotations=annotations),
        "spec": {
            "predictor": {
                "minReplicas": t.replicas,
                "canaryTrafficPercent": percent,
                "containers": [container],
            }
        },
    }
    return [service], notes


# -- output ----------------------------------------------------------------------------------


def _percent(weight: float) -> int:
    """A weight as the whole percent the controllers take (at least 1 of a positive one)."""
    return max(1, round(weight)) if weight > 0 else 0


def _dump(t: _Target, format: str, documents: list[dict[str, Any]], notes: list[str]) -> str:
    """The documents as YAML, after a header saying what they are and what they need."""
    what = (
        f"{t.strategy} rollout of {t.model} over {t.stable}"
        if t.rollout is not None
        else f"{t.model} (no active rollout; the plan's {t.strategy} for the next)"
    )
    header = [
        f"mlplan rollout export {t.deployment} --format {format}: {what}",
        f"the pods read the store's URL from Secret {t.store_secret} (key {_STORE_FIELD})",
        *(
            [f"the admin API key is read from Secret {t.key_secret} (key {_KEY_FIELD})"]
            if format != "kserve"
            else []
        ),
        *notes,
    ]
    yaml = YAML(typ="rt")  # keeps each object's keys in the order written, unlike "safe"
    yaml.default_flow_style = False
    yaml.explicit_start = True
    yaml.width = 4096  # a URL on one line
    yaml.representer.ignore_aliases = lambda _data: True  # no &anchors: every step spelled out
    buffer = io.StringIO()
    yaml.dump_all(documents, buffer)
    return "".join(f"# {line}\n" for line in header) + buffer.getvalue()
