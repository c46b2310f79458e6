"""``mlplan rollout run`` and ``mlplan serve --controller``: one decision with --once, bad
input refused; and a real controller process killed with SIGKILL mid-rollout, at each state,
then started again: it resumes from the store and never promotes on what it did not watch."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import edit_plan, ok, strict_json
from tests.serving.conftest import server_process, stop

from mlplan.cli._cmd_rollout import run
from mlplan.rollout import (
    LEASE_SECONDS,
    acquire_lease,
    rollout_history,
    rollout_status,
    start_rollout,
)
from mlplan.store import RolloutLeaseRecord
from mlplan.workspace import Workspace, get_deployment

_STEPS = """  steps:
    - {weight: 5, duration: 30m, min_requests: 100}
    - {weight: 25, duration: 1h, min_requests: 100}
    - {weight: 50, duration: 1h, min_requests: 100}
    - {weight: 100, duration: 1d, min_requests: 100}
"""


def test_run_once_makes_one_decision_and_gives_the_lease_back(live: Workspace, cli: Any) -> None:
    start_rollout(live, "logistic-2", strategy="canary", by="Ana")
    decision = strict_json(ok(cli("rollout", "run", "production", "--once", "--json")).stdout)
    assert (decision["action"], decision["state"], decision["weight"], decision["held"]) == (
        "advance",
        "progressing",
        5,
        True,
    )
    assert decision["holder"].startswith("controller-")
    assert acquire_lease(live, "production", "next").held  # given back
    said = ok(cli("rollout", "run", "production", "--once")).stdout
    assert "next drives production's rollouts" in said and "waiting" in said


def test_run_and_serve_controller_refuse_bad_input(live: Workspace, cli: Any) -> None:
    unknown = cli("rollout", "run", "staging", "--once")
    assert unknown.exit_code == 1
    assert "no deployment 'staging'; deployments: production" in " ".join(unknown.stderr.split())
    alone = cli("serve", "logistic-1", "--controller")
    assert alone.exit_code == 2, alone.output
    said = " ".join(alone.stderr.split())
    assert "--controller drives a deployment's rollouts: add --deployment NAME" in said


# A controller process whose analysis answers what verdict.txt says: the real command, with
# only the analysis swapped at the seam the controller imports it from.
_WITH_CANNED_ANALYSIS = r"""
import runpy, sys, types
from pathlib import Path

class Canned:
    def __init__(self, verdict):
        self.verdict = verdict

    def to_dict(self):
        return {"verdict": self.verdict}

def analyse_rollout(ws, name, *, since, until=None):
    return Canned(Path("verdict.txt").read_text().strip())

fake = types.ModuleType("mlplan.rollout._observe")
fake.analyse_rollout = analyse_rollout
sys.modules[fake.__name__] = fake
sys.argv = ["mlplan", *sys.argv[1:]]
runpy.run_module("mlplan", run_name="__main__", alter_sys=True)
"""


_LEASE = 3
"""The controllers' lease, in seconds (``--lease``): each kill waits it out."""


def _until(what: str, condition: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never: {what}"
        threading.Event().wait(0.05)
    return found


class _Controllers:
    """``mlplan rollout run production --json`` processes, one at a time."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.started = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.started += 1
        env = {k: v for k, v in os.environ.items() if k != "MLPLAN_STORE_URL"}
        out = (self.ws.root / f"controller-{self.started}.jsonl").open("wb")
        command = ["rollout", "run", "production", "--json", "--lease", str(_LEASE)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WITH_CANNED_ANALYSIS, *command],
            cwd=self.ws.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        out.close()

    def kill(self) -> None:
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def lease(self) -> tuple[str, dt.datetime, dt.datetime] | None:
        """The lease's holder, when it took it and when it expires."""
        with self.ws.store.transaction() as session:
            row = session.scalars(select(RolloutLeaseRecord)).one_or_none()
            return None if row is None else (row.holder, row.acquired_at, row.expires_at)

    def holder(self) -> tuple[str, dt.datetime, dt.datetime]:
        """The lease once this process has taken it (its pid ends the holder's name)."""
        assert self.process is not None
        pid = f":{self.process.pid}"

        def taken() -> tuple[str, dt.datetime, dt.datetime] | None:
            lease = self.lease()
            return lease if lease is not None and lease[0].endswith(pid) else None

        found: tuple[str, dt.datetime, dt.datetime] = _until("the lease taken", taken)
        return found

    def decisions(self) -> list[dict[str, Any]]:
        found = []
        for n in range(1, self.started + 1):
            for line in (self.ws.root / f"controller-{n}.jsonl").read_text().splitlines():
                if line.strip():
                    found.append(strict_json(line))
        return found


def _rollout(ws: Workspace) -> Any:
    (found,) = rollout_status(ws, "production")
    return found


@pytest.mark.slow
def test_a_killed_controller_resumes_and_never_promotes_on_restart(live: Workspace) -> None:
    edit_plan(
        live,
        _STEPS,
        "  steps:\n    - {weight: 50, duration: 3s, min_requests: 0}\n"
        "    - {weight: 100, duration: 5s, min_requests: 0}\n",
    )
    edit_plan(live, "  interval: 1m", "  interval: 1s")
    (live.root / "verdict.txt").write_text("pass")
    stable = get_deployment(live).model_ref
    candidate = start_rollout(live, "logistic-2", strategy="canary", by="Ana")[1].candidate
    controllers = _Controllers(live)

    # Killed at the first step: the next one takes over once the lease expires, and goes on.
    controllers.start()
    _until("step 1", lambda: _rollout(live).step == 1)
    controllers.kill()
    controllers.start()
    controllers.holder()
    _until("step 2", lambda: _rollout(live).step == 2)

    # Killed at the last step before its 5s are up: the next one takes over when the step's
    # time is long past, yet promotes only after watching 5s itself.
    entered = rollout_history(live, "production")[-1].events[-1].at
    _until("most of the step", lambda: dt.datetime.now(dt.UTC) - entered > dt.timedelta(seconds=2))
    assert _rollout(live).state == "progressing"
    controllers.kill()
    controllers.start()
    killed = dt.datetime.now(dt.UTC)
    holder, acquired, _ = controllers.holder()
    # The lease had to expire first (renewed at most a third of it before the kill).
    assert acquired - killed > dt.timedelta(seconds=_LEASE * 2 / 3 - 0.5)
    _until("promoted", lambda: _rollout(live).state == "promoted")
    promoted = rollout_history(live, "production")[-1].events[-1]
    since = dt.datetime.fromisoformat(promoted.figures["since"])
    assert (promoted.action, promoted.actor, promoted.figures["analysis"]) == (
        "promote",
        holder,
        "pass",
    )
    assert since >= acquired and promoted.at - since >= dt.timedelta(seconds=5)
    assert get_deployment(live).model_ref == candidate

    # Killed while paused (an inconclusive step): the next one leaves it paused.
    (live.root / "verdict.txt").write_text("inconclusive")
    start_rollout(live, stable, strategy="canary", by="Ana")
    _until("paused", lambda: _rollout(live).state == "paused")
    controllers.kill()
    controllers.start()
    controllers.holder()
    _until(
        "a decision of the last controller",
        lambda: (live.root / f"controller-{controllers.started}.jsonl").read_text().strip(),
    )
    assert controllers.stop() == 0  # SIGTERM: it stops cleanly, the lease given back
    lease = controllers.lease()
    assert lease is not None and lease[2] <= dt.datetime.now(dt.UTC)
    assert (_rollout(live).state, get_deployment(live).model_ref) == ("paused", candidate)

    moves = [(d["action"], d["state"]) for d in controllers.decisions() if d["action"]]
    assert moves == [
        ("advance", "progressing"),  # the first: started, and to 50 %
        ("advance", "progressing"),  # the second: to 100 %
        ("promote", "promoted"),  # the third, after watching 5s
        ("advance", "progressing"),  # the next rollout
        ("pause", "paused"),
    ]
    assert json.dumps(moves)  # every line was strict JSON (strict_json above)


@pytest.mark.slow
def test_serve_with_controller_drives_the_served_deployment(live: Workspace) -> None:
    start_rollout(live, "logistic-2", strategy="canary", by="Ana")
    with server_process(live.root, "--deployment", "production", "--controller") as (process, _):
        _until("the first step", lambda: _rollout(live).step == 1)
        stop(process)
    moved = rollout_history(live, "production")[-1].events[-1]
    assert (moved.action, moved.actor_kind) == ("advance", "controller")
    assert acquire_lease(live, "production", "next").held  # given back as the server stopped


def test_the_lease_option_defaults_to_the_controllers_lease() -> None:
    assert inspect.signature(run).parameters["lease"].default == LEASE_SECONDS
