"""The controller: what moves a deployment's rollout through its steps on its own.

One controller per deployment acts (the lease, ``_lease.py``); ``mlplan rollout run NAME``
runs one in the foreground, ``mlplan serve --controller`` in a thread of the server. Each
:meth:`Controller.tick` renews the lease and makes at most one decision from what the store
holds, so a controller killed and started again carries on from there:

- ``pending``: start it; a canary or a blue-green also advances to its first step (blue-green's
  one step is the switch to 100 %); a shadow only starts mirroring.
- ``progressing``: every ``rollout.interval`` the analysis judges the step's window. A failing
  one is recorded (an ``analysis`` event, so failures count across restarts); the
  ``failure_limit``-th failure in a step rolls the rollout back (``auto_rollback``; else it
  pauses). Once the step has been watched for its hold — a canary step's ``duration``,
  blue-green's ``rollback_window`` after the switch, a shadow's first step's ``duration`` — a
  pass advances to the next step, or promotes after the last; inconclusive pauses (never
  promotes).
- A shadow never promotes on its own: once it passed over its hold the controller pauses it,
  the passing figures in the event, for a person to promote (``mlplan rollout promote``).
- ``paused``: nothing; a person resumes, promotes, aborts or rolls back.
- A move past the plan's ``approval_above`` without an approval of gate ``promote`` naming
  the candidate pauses the rollout, the command to record one in the event's reason.

**Never promotes on restart.** A step's window starts at the newest event that is not an
analysis (the move that entered the step, or a person's resume), but never before this
controller took the lease: a controller started again — or one that lost its lease and took it
back — watches a full hold of fresh observations before it advances or promotes. Failures
recorded before the restart still count.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlplan.errors import (
    CheckFailedError,
    DeploymentNotFoundError,
    MlplanError,
    RolloutStateError,
)
from mlplan.rollout._lease import LEASE_SECONDS, acquire_lease, new_holder, release_lease
from mlplan.rollout._machine import Action
from mlplan.rollout._rollouts import (
    ANALYSIS,
    RolloutEvent,
    RolloutInfo,
    active_rollout,
    approval_needed,
    move_rollout,
    record_analysis,
)
from mlplan.rollout._smoke import smoke_test
from mlplan.workspace import Workspace, parse_duration

__all__ = ["Analyser", "AnalysisResult", "Controller", "Decision"]

_VERDICTS = ("pass", "fail", "inconclusive")


class AnalysisResult(Protocol):
    """What an analysis of a rollout's window answers: its ``verdict`` (``pass``, ``fail`` or
    ``inconclusive``; anything else counts as a failure) and its figures."""

    @property
    def verdict(self) -> str:
        """``pass``, ``fail`` or ``inconclusive``."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of what it found."""
        ...


class Analyser(Protocol):
    """Judges the deployment ``name``'s rollout on what it served since ``since``."""

    def __call__(self, ws: Workspace, name: str, *, since: dt.datetime) -> AnalysisResult: ...


def analyse_with_the_default(ws: Workspace, name: str, *, since: dt.datetime) -> AnalysisResult:
    """The rollout analysis mlplan ships (``_observe.analyse_rollout``), looked up at each
    call by its module's name, so that a process may put another module in its place."""
    module = importlib.import_module("mlplan.rollout._observe")
    result: AnalysisResult = module.analyse_rollout(ws, name, since=since)
    return result


@dataclass(frozen=True)
class Decision:
    """What one tick of the controller did: the move it made (``action``, None for none), the
    rollout's state and step after (None without an active rollout), whether it holds the
    lease (else ``holder`` is who does), whether it ran an analysis, and a sentence."""

    deployment: str
    at: dt.datetime
    holder: str
    held: bool
    message: str
    action: str | None = None
    state: str | None = None
    step: int | None = None
    weight: float | None = None
    analysed: bool = False
    figures: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "deployment": self.deployment,
            "at": self.at.isoformat(),
            "holder": self.holder,
            "held": self.held,
            "action": self.action,
            "state": self.state,
            "step": self.step,
            "weight": self.weight,
            "analysed": self.analysed,
            "message": self.message,
            "figures": self.figures,
        }


class Controller:
    """Drives the rollouts of the deployment ``name``, one decision per :meth:`tick`.

    ``analyse`` judges a window (default: mlplan's rollout analysis); ``clock`` gives the time
    in seconds since the epoch (``time.time``; a test passes its own); ``holder`` names this
    controller in the lease (default: a random id, the host and the process);
    ``lease_seconds`` how long the lease lasts unless renewed.
    """

    def __init__(
        self,
        ws: Workspace,
        name: str,
        *,
        analyse: Analyser | None = None,
        clock: Callable[[], float] = time.time,
        holder: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.ws = ws
        self.name = name
        self.holder = holder or new_holder()
        self.lease_seconds = lease_seconds
        self._analyse: Analyser = analyse or analyse_with_the_default
        self._clock = clock
        self._acquired_at: dt.datetime | None = None
        # The last analysis: (the rollout, the event that entered its step), and when.
        self._analysed: tuple[tuple[int, dt.datetime], dt.datetime] | None = None

    def tick(self) -> Decision:
        """Renew the lease and make at most one decision; what it did.

        Raises
        ------
        DeploymentNotFoundError
            No deployment ``name``.
        """
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        lease = acquire_lease(self.ws, self.name, self.holder, now=now, seconds=self.lease_seconds)
        if not lease.held:
            self._acquired_at = None
            return self._decision(
                now,
                f"{lease.holder} drives {self.name}'s rollouts (its lease runs to "
                f"{lease.expires_at:%H:%M:%S} UTC); waiting",
                held=False,
                holder=lease.holder,
            )
        if lease.acquired_at != self._acquired_at:
            self._acquired_at = lease.acquired_at
            self._analysed = None
        rollout = active_rollout(self.ws, self.name)
        if rollout is None:
            return self._decision(now, f"{self.name} has no active rollout; nothing to do")
        try:
            if rollout.state == "pending":
                return self._start(rollout, now)
            if rollout.state == "progressing":
                return self._progress(rollout, now, lease.acquired_at)
        except RolloutStateError as error:  # a person moved it meanwhile: look again next tick
            return self._decision(now, f"not moved: {error}", rollout=rollout)
        return self._decision(
            now,
            f"{_label(rollout)} is paused; a person moves it: mlplan rollout resume|promote|"
            f"abort|rollback {self.name} --by WHO",
            rollout=rollout,
        )

    def run(
        self,
        stop: threading.Event,
        *,
        report: Callable[[Decision], None] | None = None,
        every: float | None = None,
    ) -> None:
        """Tick every ``every`` seconds (default: a second, at most a third of the lease)
        until ``stop`` is set, passing each decision to ``report``; then give the lease back.
        A tick that fails with an error mlplan raises (the store's connection lost, an
        analysis refused) is reported and tried again, an unknown deployment excepted.

        Raises
        ------
        DeploymentNotFoundError
            No deployment ``name``.
        """
        wait = every if every is not None else min(1.0, self.lease_seconds / 3)
        try:
            while not stop.is_set():
                try:
                    decision = self.tick()
                except DeploymentNotFoundError:
                    raise
                except MlplanError as error:  # a lost connection, an analysis refused
                    decision = self._decision(
                        dt.datetime.fromtimestamp(self._clock(), dt.UTC),
                        f"nothing done this time, trying again: {error}",
                        held=False,
                    )
                if report is not None:
                    report(decision)
                stop.wait(wait)
        finally:
            with contextlib.suppress(MlplanError):  # unreleased, it expires on its own
                self.release()

    def release(self) -> bool:
        """Give the lease back, if this controller holds it (the next one takes it at once).
        Whether it did."""
        self._acquired_at = None
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        return release_lease(self.ws, self.name, self.holder, now=now)

    # -- the decisions ------------------------------------------------------------------------

    def _start(self, rollout: RolloutInfo, now: dt.datetime) -> Decision:
        """Start a pending rollout; a canary or blue-green goes to its first step too."""
        started = self._move(rollout, "start", now, "the controller took the rollout up")
        if rollout.strategy in ("canary", "blue_green"):
            return self._advance(started, now, "started; ")
        return self._decision(
            now, f"started {_label(started)}: it mirrors traffic", rollout=started, action="start"
        )

    def _progress(
        self, rollout: RolloutInfo, now: dt.datetime, acquired_at: dt.datetime
    ) -> Decision:
        """Judge a progressing rollout's step, and move it when its window says so."""
        if rollout.strategy in ("canary", "blue_green") and rollout.step == 0:
            return self._advance(rollout, now, "")
        entered = _entered(rollout)
        since = max(entered.at, acquired_at)
        hold = self._hold(rollout)
        watched = now - since
        interval = parse_duration(self.ws.plan.rollout.interval, param="rollout.interval")
        key = (rollout.id, entered.at)
        last = self._analysed
        due = (
            last is None
            or last[0] != key
            or now - last[1] >= interval
            or (watched >= hold and last[1] - since < hold)
        )
        if not due:
            left = (interval - (now - last[1])).total_seconds() if last else 0.0
            return self._decision(
                now,
                f"watching {_where(rollout)} for {_seconds(watched)} of {_seconds(hold)}; "
                f"next analysis in {left:.0f}s",
                rollout=rollout,
            )
        analysis = self._analyse(self.ws, self.name, since=since)
        self._analysed = (key, now)
        verdict = analysis.verdict if analysis.verdict in _VERDICTS else "fail"
        figures = {
            "analysis": verdict,
            "since": since.isoformat(),
            "until": now.isoformat(),
            "report": analysis.to_dict(),
        }
        if verdict == "fail":
            return self._failed(rollout, now, figures)
        if watched < hold:
            return self._decision(
                now,
                f"analysis of {_where(rollout)}: {verdict} after {_seconds(watched)} of "
                f"{_seconds(hold)}",
                rollout=rollout,
                analysed=True,
                figures=figures,
            )
        if verdict == "inconclusive":
            return self._pause(
                rollout,
                now,
                f"the analysis of {_where(rollout)} is inconclusive after {_seconds(watched)}: "
                f"not promoted; resume it to watch again, or promote, abort or roll it back",
                figures,
            )
        if rollout.strategy == "shadow":
            return self._pause(
                rollout,
                now,
                f"the shadow passed its analysis over {_seconds(watched)}; a shadow is promoted "
                f"by a person: mlplan rollout promote {self.name} --by WHO",
                figures,
            )
        if rollout.step < len(rollout.steps):
            return self._advance(rollout, now, "", figures)
        return self._promote(rollout, now, figures)

    def _failed(
        self,
        rollout: RolloutInfo,
        now: dt.datetime,
        figures: dict[str, Any],
    ) -> Decision:
        """Record a failing analysis; at the step's failure limit, roll back (or pause)."""
        spec = self.ws.plan.rollout
        before = _failures(rollout)
        reason = f"the analysis of {_where(rollout)} failed ({before + 1} of {spec.failure_limit})"
        if before + 1 < spec.failure_limit:
            recorded = record_analysis(
                self.ws, self.name, figures, by=self.holder, note=reason, at=now
            )
            return self._decision(now, reason, rollout=recorded, analysed=True, figures=figures)
        if spec.auto_rollback:
            after = self._move(rollout, "rollback", now, f"{reason}: rolled back", figures)
            return self._decision(
                now,
                f"{reason}: rolled back; {after.stable} serves all traffic",
                rollout=after,
                action="rollback",
                analysed=True,
                figures=figures,
            )
        return self._pause(
            rollout, now, f"{reason}: paused (the plan sets auto_rollback: false)", figures
        )

    def _advance(
        self,
        rollout: RolloutInfo,
        now: dt.datetime,
        prefix: str,
        figures: dict[str, Any] | None = None,
    ) -> Decision:
        """Take the candidate to its next step, unless that needs an approval not given; a
        blue-green's switch only once green passed the plan's smoke requests (else it is
        rolled back, the failures in the event)."""
        weight = rollout.steps[rollout.step]
        missing = approval_needed(self.ws, rollout.candidate, weight)
        if missing is not None:
            return self._pause(rollout, now, f"{prefix}paused: {missing}", figures or {})
        requests = self.ws.plan.rollout.smoke
        if rollout.strategy == "blue_green" and rollout.step == 0 and requests:
            smoke = smoke_test(self.ws, rollout.candidate, requests)
            if not smoke.passed:
                after = self._move(
                    rollout,
                    "rollback",
                    now,
                    f"green failed {len(smoke.failures)} of the plan's smoke checks before the "
                    f"switch: rolled back",
                    smoke.to_dict(),
                )
                return self._decision(
                    now,
                    f"{prefix}rolled {_label(after)} back: {smoke.failures[0]}",
                    rollout=after,
                    action="rollback",
                    figures=smoke.to_dict(),
                )
            figures = (figures or {}) | {"smoke": smoke.to_dict()}
        after = self._move(
            rollout,
            "advance",
            now,
            f"step {rollout.step + 1} of {len(rollout.steps)}: {weight:g}% of traffic",
            figures,
        )
        return self._decision(
            now,
            f"{prefix}advanced {_label(after)} to {_where(after)}",
            rollout=after,
            action="advance",
            analysed=figures is not None,
            figures=figures or {},
        )

    def _promote(self, rollout: RolloutInfo, now: dt.datetime, figures: dict[str, Any]) -> Decision:
        """Promote the candidate after its last step passed, unless that needs an approval."""
        missing = approval_needed(self.ws, rollout.candidate, 100.0)
        if missing is not None:
            return self._pause(rollout, now, f"paused: {missing}", figures)
        try:
            after = self._move(rollout, "promote", now, "every step passed its analysis", figures)
        except CheckFailedError as error:  # no longer cleared (an approval revoked meanwhile)
            return self._pause(rollout, now, f"paused, not promoted: {error}", figures)
        return self._decision(
            now,
            f"promoted {after.candidate}: it serves {self.name}",
            rollout=after,
            action="promote",
            analysed=True,
            figures=figures,
        )

    def _pause(
        self, rollout: RolloutInfo, now: dt.datetime, reason: str, figures: dict[str, Any]
    ) -> Decision:
        """Pause the rollout for a person, saying why."""
        after = self._move(rollout, "pause", now, reason, figures)
        return self._decision(
            now,
            reason,
            rollout=after,
            action="pause",
            analysed=bool(figures),
            figures=figures,
        )

    def _move(
        self,
        rollout: RolloutInfo,
        action: Action,
        now: dt.datetime,
        note: str,
        figures: Mapping[str, Any] | None = None,
    ) -> RolloutInfo:
        """Make ``action`` as this controller."""
        return move_rollout(
            self.ws,
            self.name,
            action,
            by=self.holder,
            note=note,
            actor_kind="controller",
            figures=figures,
            at=now,
        )

    def _hold(self, rollout: RolloutInfo) -> dt.timedelta:
        """How long the step under way is watched before the rollout moves on."""
        spec = self.ws.plan.rollout
        if rollout.strategy == "blue_green":
            return parse_duration(spec.rollback_window, param="rollout.rollback_window")
        steps = spec.steps
        if not steps:
            return parse_duration(spec.interval, param="rollout.interval")
        index = min(max(rollout.step, 1), len(steps)) - 1
        return parse_duration(steps[index].duration, param=f"rollout.steps[{index}].duration")

    def _decision(
        self,
        now: dt.datetime,
        message: str,
        *,
        rollout: RolloutInfo | None = None,
        held: bool = True,
        holder: str | None = None,
        action: str | None = None,
        analysed: bool = False,
        figures: dict[str, Any] | None = None,
    ) -> Decision:
        """A decision of this tick."""
        return Decision(
            self.name,
            now,
            holder or self.holder,
            held,
            message,
            action,
            None if rollout is None else rollout.state,
            None if rollout is None else rollout.step,
            None if rollout is None else rollout.weight,
            analysed,
            figures or {},
        )


def _entered(rollout: RolloutInfo) -> RolloutEvent:
    """The event that entered the step under way: the newest that is not an analysis."""
    return next(e for e in reversed(rollout.events) if e.action != ANALYSIS)


def _failures(rollout: RolloutInfo) -> int:
    """The failing analyses recorded since the step was entered."""
    found = 0
    for e in reversed(rollout.events):
        if e.action != ANALYSIS:
            break
        found += e.figures.get("analysis") == "fail"
    return found


def _label(rollout: RolloutInfo) -> str:
    """``production's canary of gbt-1@2``."""
    return f"{rollout.deployment}'s {rollout.strategy} of {rollout.candidate}"


def _where(rollout: RolloutInfo) -> str:
    """The step under way: ``step 2 of 4 (25%)``, or the shadow."""
    if not rollout.steps:
        return "the shadow"
    return f"step {rollout.step} of {len(rollout.steps)} ({rollout.weight:g}%)"


def _seconds(span: dt.timedelta) -> str:
    """A span in whole seconds: ``90s``."""
    return f"{max(span.total_seconds(), 0.0):.0f}s"
