"""A deployment's traffic on one server: which model answers each request, and which only
mirrors it, following the deployment's rollout in the store.

- :class:`Arm`: a loaded package with its validators and its own micro-batcher.
- :class:`Routing`: one immutable snapshot of where traffic goes — the stable arm, the
  candidate's, the mode (``single``, ``split`` by weight, ``shadow``), the candidate's share
  and the sticky key. A request reads ``state.routing`` once and keeps that snapshot to the
  end, so a change in the middle of a request never mixes two models.
- :class:`RouteFollower`: a task in the server's event loop that reads the deployment's route
  (``workspace.deployment_route``, one indexed read) every ``refresh_seconds`` and swaps the
  snapshot: a candidate is loaded and warmed up in a thread as soon as its rollout exists
  (pending), so the first canary step or the blue-green switch costs nothing; an arm no
  snapshot holds any more is stopped once its in-flight requests are answered. Every worker
  process follows the store on its own, so a change reaches every worker, and every replica
  sharing a PostgreSQL store, within ``refresh_seconds`` plus a read.

Routing. A canary (or a blue-green switch, at 100) sends a request to the candidate when its
bucket, in [0, 100), is below the candidate's weight. With a sticky key (the plan's
``rollout.sticky``: ``header:NAME`` or ``field:NAME``, a record's field) the bucket is the
key's hash, the same in every process and on every machine, so a caller stays on one model
while the weight rises (a bucket below 5 is below 25 too); without one, a request's bucket is
drawn at random. A shadow answers every request with the stable model and mirrors a share of
them (``rollout.shadow_share``) to the candidate off the request path (``Routes._mirror``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

from mlplan.serving._batcher import MicroBatcher
from mlplan.serving._model import ServedModel
from mlplan.serving._validate import RecordValidator, TensorValidator
from mlplan.workspace import DeploymentRoute

__all__ = ["Arm", "Mode", "RouteFollower", "Routing", "bucket_of", "mode_of"]

Mode = Literal["single", "split", "shadow"]


@dataclass(frozen=True, eq=False)
class Arm:
    """One model a server answers or mirrors with: the package (``ref``, ``name@version``),
    its validators and its micro-batcher."""

    ref: str
    model: ServedModel
    records: RecordValidator
    tensors: TensorValidator
    batcher: MicroBatcher


@dataclass(frozen=True)
class Routing:
    """Where this server's traffic goes now (see the module's docstring)."""

    stable: Arm
    candidate: Arm | None = None
    mode: Mode = "single"
    weight: float = 0.0
    shadow_share: float = 100.0
    sticky: str | None = None
    rollout: int | None = None
    strategy: str | None = None
    state: str | None = None

    @property
    def arms(self) -> tuple[Arm, ...]:
        """The arms loaded: the stable one, then the candidate."""
        return (self.stable,) if self.candidate is None else (self.stable, self.candidate)

    def choose(self, key: str | None) -> Arm:
        """The arm that answers a request whose sticky key is ``key`` (None: at random)."""
        candidate = self.candidate
        if self.mode != "split" or candidate is None or self.weight <= 0:
            return self.stable
        if self.weight >= 100:
            return candidate
        bucket = random.random() * 100 if key is None else bucket_of(key)
        return candidate if bucket < self.weight else self.stable

    def mirrors(self) -> Arm | None:
        """The shadow arm when this request is mirrored (a share of requests), else None."""
        if self.mode != "shadow" or self.candidate is None:
            return None
        if self.shadow_share < 100 and random.random() * 100 >= self.shadow_share:
            return None
        return self.candidate

    def arm_named(self, name: str, version: str | None) -> Arm | None:
        """The loaded arm whose model is ``name`` (and package version ``version``, when
        given), the stable one first."""
        for arm in self.arms:
            if arm.model.name == name and version in (None, arm.model.version):
                return arm
        return None


def bucket_of(key: str) -> float:
    """A sticky key's bucket in [0, 100): its hash, the same in every process."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


def mode_of(route: DeploymentRoute) -> Mode:
    """How traffic moves for a deployment's route: a shadow mirrors only while progressing
    (paused, it stops); a canary or blue-green splits by the candidate's weight while the
    rollout is active (a pause holds the weight); else the stable model alone."""
    if route.candidate is None or route.state in (None, "promoted", "aborted", "rolled_back"):
        return "single"
    if route.strategy == "shadow":
        return "shadow" if route.state == "progressing" else "single"
    if route.strategy in ("canary", "blue_green") and route.weight > 0:
        return "split"
    return "single"


Loader = Callable[[str, bool], Awaitable[Arm]]
"""Loads, verifies and warms up a package (``name@version``) as an arm, batcher started (the
flag: as a shadow, whose batches never run in the event loop)."""


class RouteFollower:
    """Keeps a server's :class:`Routing` in step with its deployment's route in the store.

    Parameters
    ----------
    read
        The deployment's route now (a blocking read; run in a thread).
    load
        Makes the arm of a package version (see :data:`Loader`).
    publish
        Called with each new snapshot (it becomes ``state.routing``).
    report
        Called with a line to print when something goes wrong (a candidate that does not
        load; a store that cannot be read, said at the first failed read and again once a
        read succeeds, with how many failed and for how long); the server keeps its
        current routing meanwhile.
    """

    def __init__(
        self,
        routing: Routing,
        route: DeploymentRoute,
        *,
        read: Callable[[], DeploymentRoute],
        load: Loader,
        publish: Callable[[Routing], None],
        report: Callable[[str], None],
        refresh_seconds: float = 1.0,
    ) -> None:
        self.routing = routing
        self.route = route
        self._read = read
        self._load = load
        self._publish = publish
        self._report = report
        self.refresh_seconds = refresh_seconds
        self._failed: dict[str, int] = {}  # refs that did not load: polls left before a retry
        self._task: asyncio.Task[None] | None = None
        self.changes = 0  # snapshots published (for tests and metrics)

    def start(self) -> None:
        """Follow the store from the running event loop until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        """Stop following (the current routing stays)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        failed, since = 0, 0.0  # reads failed in a row, and when the first did
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                route = await asyncio.to_thread(self._read)
            except Exception as exc:  # the store away for a while: keep serving as is
                if not failed:  # said once, not every second while it lasts
                    since = time.monotonic()
                    self._report(
                        f"cannot read the deployment's rollout from the store, so traffic "
                        f"stays as it is until it can: {exc}"
                    )
                failed += 1
                continue
            if failed:
                self._report(
                    f"reads the deployment's rollout again, after {failed} failed "
                    f"read{'s' if failed > 1 else ''} over {time.monotonic() - since:.0f} s"
                )
                failed = 0
            await self.apply(route)

    async def apply(self, route: DeploymentRoute) -> Routing:
        """Make the routing that ``route`` asks for (loading what it needs) and publish it
        when it differs; the routing after."""
        current = self.routing
        # The candidate is loaded while its rollout is active, moving traffic or not, so
        # that a step, a switch or a resume is instant.
        wanted_candidate = route.candidate
        stable = await self._arm(route.model, current, shadow=False)
        if stable is None:  # the deployment's new model does not load: keep what serves
            return current
        candidate = None
        if wanted_candidate is not None and wanted_candidate != stable.ref:
            candidate = await self._arm(
                wanted_candidate, current, shadow=route.strategy == "shadow"
            )
        mode = mode_of(route) if candidate is not None else "single"
        routing = replace(
            current,
            stable=stable,
            candidate=candidate,
            mode=mode,
            weight=route.weight if mode == "split" else 0.0,
            rollout=route.rollout,
            strategy=route.strategy,
            state=route.state,
        )
        self.route = route
        if _same(routing, current):
            return current
        self.routing = routing
        self._publish(routing)
        self.changes += 1
        kept = {id(a) for a in routing.arms}
        for arm in current.arms:
            if id(arm) not in kept:  # answered by no snapshot from now on
                await arm.batcher.stop()  # its in-flight requests get their answers
        return routing

    async def _arm(self, ref: str, current: Routing, *, shadow: bool) -> Arm | None:
        """The arm of ``ref``: the one loaded already, else a new one (None when it does not
        load; tried again after 30 polls)."""
        for arm in current.arms:
            if arm.ref == ref:
                return arm
        left = self._failed.get(ref, 0)
        if left > 0:
            self._failed[ref] = left - 1
            return None
        try:
            arm = await self._load(ref, shadow)
        except Exception as exc:
            self._failed[ref] = 30
            self._report(f"{ref} does not load, so traffic stays as it is: {exc}")
            return None
        self._failed.pop(ref, None)
        return arm


def _same(a: Routing, b: Routing) -> bool:
    """Whether two snapshots route alike (the same arms, mode, weight and rollout)."""
    return (
        a.stable is b.stable
        and a.candidate is b.candidate
        and (a.mode, a.weight, a.rollout, a.strategy, a.state)
        == (b.mode, b.weight, b.rollout, b.strategy, b.state)
    )
