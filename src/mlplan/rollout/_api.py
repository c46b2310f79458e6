"""The rollout routes of the server: ``mlplan rollout status|history|promote|pause|resume|
abort|rollback`` over HTTP, behind the ``admin`` role, with the same JSON as the commands'
``--json``.

==============================================  =====  ======================================
``GET  /v1/rollouts``                           admin  the newest rollout of each deployment
``GET  /v1/rollouts/{name}``                    admin  the deployment's newest rollout
``POST /v1/rollouts/{name}``                    admin  start one: ``{"model": NAME[@V],
                                                       "strategy", "by", "note"}`` (as
                                                       ``mlplan deploy``); 201, the rollout
``GET  /v1/rollouts/{name}/history``            admin  its rollouts, each with its moves
``GET  /v1/rollouts/{name}/analysis``           admin  the current step's analysis (a web
                                                       metric for Argo Rollouts, Flagger)
``POST /v1/rollouts/{name}/promote`` (pause,    admin  a move: ``{"by": WHO, "note": WHY}``,
``resume``, ``abort``, ``rollback``)                   both optional; the rollout after
==============================================  =====  ======================================

Serving does not import this package (it sits above): serving's app takes extra routes
(``ExtraRoute``), and :func:`create_app_from_env` is the app factory that adds these, the one
``mlplan serve`` names for its worker processes.

Every move is recorded as the commands record theirs — an event of the rollout, with who, why
and the states — its actor naming the API and the key it came with (its id, never its
secret): ``Priya (admin API, key 3f2a9c01d4e7)``; ``by`` defaults to the key's name. The
server prints each move too. An unknown deployment, or a history or status of one that never
had a rollout, is 404; a move the rollout's state does not allow (none active, illegal from
its state, a candidate no longer cleared) is 409, as is a start the deployment refuses (a
rollout active already, a candidate not cleared); an unknown model is 404; a malformed body
is 422; each with the message the command gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlplan.errors import (
    CheckFailedError,
    DeploymentNotFoundError,
    NotFoundError,
    RolloutNotFoundError,
    RolloutStateError,
    UsageError,
)
from mlplan.rollout._machine import Action
from mlplan.rollout._observe import analyse_rollout
from mlplan.rollout._rollouts import (
    move_rollout,
    rollout_history,
    rollout_status,
    start_rollout,
)
from mlplan.serving import ExtraRoute, RouteCall, ServeConfig, create_app

__all__ = ["APP_FACTORY", "MOVES", "create_app_from_env", "rollout_routes"]

APP_FACTORY = "mlplan.rollout:create_app_from_env"
"""The app factory of a server with the rollout routes (``serve(app_factory=...)``)."""

MOVES: tuple[Action, ...] = ("promote", "pause", "resume", "abort", "rollback")
"""The moves a person makes through the API (the controller's are its own)."""

_FIELDS = ("by", "note")

Answer = tuple[int, Any]


def rollout_routes() -> tuple[ExtraRoute, ...]:
    """The rollout routes, each behind the ``admin`` role."""
    routes = [
        ExtraRoute("GET", "/v1/rollouts", "admin", _status),
        ExtraRoute("GET", "/v1/rollouts/{name}", "admin", _status),
        ExtraRoute("POST", "/v1/rollouts/{name}", "admin", _start),
        ExtraRoute("GET", "/v1/rollouts/{name}/history", "admin", _history),
        ExtraRoute("GET", "/v1/rollouts/{name}/analysis", "admin", _analysis),
    ]
    routes += [
        ExtraRoute("POST", f"/v1/rollouts/{{name}}/{action}", "admin", _mover(action))
        for action in MOVES
    ]
    return tuple(routes)


def create_app_from_env() -> Any:
    """The app for ``uvicorn --factory`` in ``mlplan serve``'s worker processes: the
    server's (configured from the environment) with the rollout routes."""
    return create_app(ServeConfig.from_env(), rollout_routes())


def _status(call: RouteCall) -> Answer:
    """``GET /v1/rollouts[/{name}]``: as ``mlplan rollout status [NAME] --json``."""
    return _answered(
        lambda: (200, [r.to_dict() for r in rollout_status(call.ws, call.params.get("name"))])
    )


def _history(call: RouteCall) -> Answer:
    """``GET /v1/rollouts/{name}/history``: as ``mlplan rollout history NAME --json``."""
    return _answered(
        lambda: (200, [r.to_dict() for r in rollout_history(call.ws, call.params["name"])])
    )


def _analysis(call: RouteCall) -> Answer:
    """``GET /v1/rollouts/{name}/analysis``: the analysis of the deployment's active rollout
    (else its newest) over its current step, as ``mlplan rollout status NAME --json`` shows
    it under ``analysis``; the metric provider Argo Rollouts and Flagger call (a web metric).

    The JSON object has flat numbers on top, for a provider's ``jsonPath`` and
    ``successCondition``:

    - ``verdict``: ``"pass"``, ``"fail"`` or ``"inconclusive"``; ``pass``: 1 or 0;
    - ``candidate_requests``, ``candidate_error_rate``, ``candidate_latency_p50_ms``,
      ``candidate_latency_p99_ms``, ``candidate_null_rate``, and the same with ``stable_``;
      ``prediction_psi``, ``class_share_shift``, ``agreement`` (a shadow's), each null when
      it cannot be measured;

    then the whole analysis: ``deployment``, ``rollout`` (its id), ``strategy``, ``state``,
    ``stable_model``, ``candidate_model``, ``since`` and ``until`` (the window, ISO 8601),
    ``min_requests``, ``reason`` (what decided the verdict), ``requests`` (per arm),
    ``arms`` (per arm: requests, refused, records, errors, error_rate, latency_p50_ms,
    latency_p99_ms, null_rate, class_shares or mean_value, labelled, decided, metrics on the
    labelled records, human_agreement), ``shift`` (prediction_psi, class_share_shift and its
    p-value, agreement and the pairs it counted) and ``checks``: one per guard after the
    built-in ``requests``, each with metric, slice, group (the slice value that decided),
    op, threshold, candidate, stable, n_candidate, n_stable, test, p_value, verdict, reason
    (and ``groups``, every slice value judged, for a sliced guard).

    E.g. Argo Rollouts: ``successCondition: result.pass == 1`` with ``jsonPath: "{$}"``.
    """
    return _answered(lambda: (200, analyse_rollout(call.ws, call.params["name"]).to_dict()))


_START_FIELDS = ("model", "strategy", "by", "note")
_START_SHAPE = (
    'the body must be a JSON object naming the model: {"model": "gbt-1", "strategy": '
    '"canary", "by": WHO, "note": WHY} (strategy, by and note optional)'
)


def _start(call: RouteCall) -> Answer:
    """``POST /v1/rollouts/{name}``: ``mlplan deploy MODEL --name NAME [--strategy S] --by
    WHO [--note WHY]`` — the model cleared as ``deploy`` clears it (no way past a failed gate
    here: that is the command's ``--allow-failed-gates``, for staging); 201 and the rollout
    (a replace, or a deployment's first model, promoted at once)."""
    problem, given = _read_body(call, _START_FIELDS, _START_SHAPE, "a start takes")
    if problem is None and given["model"] is None:
        problem = _START_SHAPE
    problem, actor = (problem, None) if problem is not None else _actor(call, given["by"])
    if problem is not None or actor is None:
        return 422, problem
    name, model = call.params["name"], str(given["model"])

    def started() -> Answer:
        _, rollout = start_rollout(
            call.ws, model, name=name, strategy=given["strategy"], by=actor, note=given["note"]
        )
        print(
            f"mlplan serve: {rollout.strategy} rollout of {rollout.candidate} on {name} started "
            f"by {actor}: {rollout.state}",
            flush=True,
        )
        return 201, rollout.to_dict()

    return _answered(started, moving=True)


def _mover(action: Action) -> Callable[[RouteCall], Answer]:
    """The handler of ``POST /v1/rollouts/{name}/ACTION``."""

    def move(call: RouteCall) -> Answer:
        problem, given = _read_body(
            call,
            _FIELDS,
            'the body must be a JSON object: {"by": WHO, "note": WHY}, both optional',
            "a move takes only",
        )
        problem, actor = (problem, None) if problem is not None else _actor(call, given["by"])
        if problem is not None or actor is None:
            return 422, problem
        name = call.params["name"]

        def moved() -> Answer:
            rollout = move_rollout(call.ws, name, action, by=actor, note=given["note"])
            print(
                f"mlplan serve: rollout {action} of {name} by {actor}: {rollout.state}, "
                f"{rollout.serving} serves",
                flush=True,
            )
            return 200, rollout.to_dict()

        return _answered(moved, moving=True)

    move.__doc__ = f"``POST /v1/rollouts/{{name}}/{action}``: ``mlplan rollout {action}``."
    return move


def _read_body(
    call: RouteCall, fields: tuple[str, ...], shape: str, takes: str
) -> tuple[str | None, dict[str, str | None]]:
    """A body of optional string ``fields`` (nothing, or a JSON object of them, each a
    non-empty string or null): what is wrong with it (None when nothing is, else ``shape``
    or the field at fault), and each field's value, stripped."""
    body = {} if call.body is None else call.body
    if not isinstance(body, dict):
        return shape, {}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        return f"unknown field {unknown[0]!r}: {takes} {', '.join(fields)}", {}
    values: dict[str, str | None] = {}
    for field in fields:
        value = body.get(field)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return f"{field!r} must be a non-empty string (or null)", {}
        values[field] = None if value is None else value.strip()
    return None, values


def _actor(call: RouteCall, by: str | None) -> tuple[str | None, str | None]:
    """Who a start or a move is recorded as — ``by`` (else the key's name) with the API and
    the key's id, e.g. ``Priya (admin API, key 3f2a9c01d4e7)`` — or why it cannot be told."""
    if by is None and call.key is not None:
        by = call.key.name
    if by is None:
        return (
            'give "by": who makes the move (this server has no keys, so the caller has no '
            "name to record)"
        ), None
    via = "no key" if call.key is None else f"key {call.key.key_id}"
    return None, f"{by} (admin API, {via})"


def _answered(answer: Callable[[], Answer], *, moving: bool = False) -> Answer:
    """``answer()``, or the status and message of the error it raised: 404 for a
    deployment or rollout that does not exist (409 for no active rollout to move), 409 for a
    move the rollout's state or the candidate's clearance refuses, 422 for a bad value."""
    try:
        return answer()
    except DeploymentNotFoundError as error:
        return 404, str(error)
    except RolloutNotFoundError as error:
        return (409 if moving else 404), str(error)
    except (RolloutStateError, CheckFailedError) as error:
        return 409, str(error)
    except NotFoundError as error:  # an unknown model
        return 404, str(error)
    except UsageError as error:
        return 422, str(error)
